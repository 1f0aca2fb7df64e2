"""「ナレッジ管理 / Knowledge admin」 tab: the triage queue, one-click fixes, and the KPIs of the question log.

Who sees it: with BPO_AUTH_FILE, the logins whose line has the role `admin` (see ui/auth.py; BPO_ADMINS, the
names that stood in before roles, still counts); without a login, only a server bound to loopback (127.0.0.1,
localhost, ::1), where whoever reaches the page sits at the machine. The tab is hidden until the page's load event
says the visitor is an admin, and every handler checks the gr.Request's login again: the events are private
(not on the API page, refused by gradio_client), but a client that posts to the queue by fn_index reaches them
anyway, so visibility alone would protect nothing. The tab is built empty: no queue data goes into the page
config.

`admin_tab(demo, assistant, settings)` is called inside build_app's gr.Tabs; it also registers the question log
on the chat's Assistant (channel "chat").
"""

from __future__ import annotations

import logging
import time

import gradio as gr

from bpo_assistant.owners import fixes, kpi, triage
from bpo_assistant.owners.db import IN_PROGRESS, OPEN, OUT_OF_SCOPE, RESOLVED
from bpo_assistant.owners.qlog import attach_question_log
from bpo_assistant.settings import REPO_ROOT, Settings

from .auth import ADMIN, role_of
from .render import md_inert

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TITLE = "ナレッジ管理 / Knowledge admin"
DEFAULT_SUITE = "evals/suites/triage.jsonl"
MAINTENANCE_COLUMNS = ["種類 / kind", "項目 / item", "言語 / lang", "担当 / owner", "内容 / detail", "ファイル / file"]
QUEUE_COLUMNS = ["テーマ / theme", "状態 / status", "件数 / count", "最終 / last", "代表質問 / question", "理由 / why"]


def admin_of(settings: Settings, username: str | None, server_name: str | None) -> tuple[bool, str, str]:
    """(allowed, who for the status column, notice shown on the tab)."""
    if settings.auth_file:
        admins = {a.strip() for a in settings.admins.split(",") if a.strip()}
        ok = bool(username) and (username in admins or role_of(settings.auth_file, username) == ADMIN)
        return ok, username or "", f"ログイン中 / signed in: {username} (admin)" if ok else ""
    if server_name in LOOPBACK:
        return True, "localhost", ("ログインなし: 127.0.0.1 で起動しているため、このPCの利用者だけが管理できます。 / "
                                   "No login configured: shown because the server is bound to 127.0.0.1 only.")
    return False, "", ""


class AdminService:
    def __init__(self, assistant, settings: Settings, demo) -> None:
        self.assistant, self.settings, self.demo = assistant, settings, demo

    def _who(self, request) -> str:
        ok, who, _ = admin_of(self.settings, getattr(request, "username", None), _bound(self.demo))
        if not ok:
            raise gr.Error("admin only / 管理者のみ")
        return who

    # -- page --------------------------------------------------------------------------------------------------
    def gate(self, request: gr.Request):
        ok, _, notice = admin_of(self.settings, getattr(request, "username", None),
                                 _bound(self.demo))
        return gr.Tab(visible=ok), notice if ok else ""

    def load(self, request: gr.Request):
        """Queue table, question choices and their selection map, then the KPIs (see kpis())."""
        self._who(request)
        themes = triage.queue(self.settings, self.assistant)
        rows, choices, picks = [], [], {}
        for th in themes:
            rows.append([th.id, th.status, th.count, time.strftime("%m-%d %H:%M", time.localtime(th.last_at)),
                         th.label, ", ".join(sorted({i.why for i in th.items}))])
            key = f"t{th.id}"
            choices.append((f"テーマ {th.id} (×{th.count}) 「{th.label}」 全体 / whole theme", key))
            picks[key] = [[i.id, i.question, i.lang] for i in th.items]
            for i in th.items:
                choices.append((f"  #{i.id} [{i.status}] {i.question}", f"q{i.id}"))
                picks[f"q{i.id}"] = [[i.id, i.question, i.lang]]
        return (rows, gr.update(choices=choices, value=None), picks, *self.kpis())

    def maintenance(self, request: gr.Request) -> list[list]:
        """`kb maintenance`'s rows (stale, review-due, few-questions), with the file relative to the kb."""
        from bpo_assistant.owners.maintenance import maintenance

        self._who(request)
        kb = str(self.settings.kb_dir).rstrip("/") + "/"
        return [[r.kind, r.item, r.lang, r.owner, r.detail, r.path.removeprefix(kb)]
                for r in maintenance(self.settings)]

    def kpis(self) -> tuple:
        """Daily table, daily plot, weekly table, weekly refusals by reason: one read of the log for all four."""
        logged = kpi.log_rows(self.settings)
        days, weeks = kpi.aggregate(logged, kpi.day_of), kpi.aggregate(logged, kpi.week_of)
        return ([d.row() for d in days], self.kpi_plot(days), [w.row() for w in weeks],
                [r for w in reversed(weeks) for r in w.reason_rows()])  # the latest week on top

    def kpi_plot(self, days: list):
        """The same daily figures as the table, as lines: one per rate (the dislike rate only on rated days, the
        curated share only on days with answers)."""
        import pandas as pd

        rows = []
        for d in days:
            rows += [(d.period, "回答率 / answer rate", d.answer_rate),
                     (d.period, "拒否率 / refusal rate", d.refusal_rate)]
            if d.rated:
                rows.append((d.period, "低評価率 / dislike rate", d.dislike_rate))
            if d.answered:
                rows.append((d.period, "キュレート回答率 / curated share", d.curated_share))
        return pd.DataFrame(rows, columns=["day", "metric", "rate"])

    def sections(self, pick: str | None, picks: dict, request: gr.Request):
        """The router's top-3 sections for the chosen question, each with its text."""
        self._who(request)
        chosen = (picks or {}).get(pick or "")
        if not chosen:
            return gr.update(choices=[], value=None), ""
        _, question, lang = chosen[0]
        kb = self.assistant.knowledge()
        if kb.section_router is None:
            return gr.update(choices=[], value=None), "この索引にはルーターがありません / no router in this index"
        ranked = kb.section_router.ranked(self.assistant.embedder.queries([question])[0])[:3]
        choices, texts = [], []
        for label, p in ranked:
            doc_id, _, section_id = label.partition("#")
            try:
                title, section_title, text = self.assistant.section(lang, doc_id, section_id)
            except Exception:  # noqa: BLE001 - a section missing in this language is just not offered
                continue
            choices.append((f"{title} › {section_title} (p={p:.2f})", label))
            texts.append(f"**{md_inert(title)} › {md_inert(section_title)}** `{label}` p={p:.2f}\n\n"
                         f"> {md_inert(text[:600])}")
        return gr.update(choices=choices, value=choices[0][1] if choices else None), "\n\n".join(texts)

    # -- fixes -------------------------------------------------------------------------------------------------
    def add_question(self, pick: str | None, section: str | None, picks: dict, request: gr.Request) -> str:
        who = self._who(request)
        chosen, error = self._chosen(pick, picks, section)
        if error:
            return error
        out, done = [], []
        for qid, question, lang in _distinct(chosen):
            try:
                fix = fixes.add_expected_question(self.settings, lang, section, question)
            except fixes.FixError as exc:
                out.append(f"✗ 「{md_inert(question)}」: {md_inert(str(exc))}")
                continue
            done.append((question, lang))
            out.append(f"✓ 「{md_inert(question)}」 → `{section}`\n\n```diff\n{_fenced(fix.diff)}```")
        if not done:
            return "\n\n".join(out)
        ids = [i for i, q, lg in chosen if (q, lg) in done]  # every asking of a wording that landed
        _, skipped = triage.set_status(self.settings, ids, RESOLVED, who, f"question:{section}")
        out += [f"⚠ {md_inert(s)}" for s in skipped]
        out.append(self._reingest_and_reask(chosen[0][1], chosen[0][2]))
        return "\n\n".join(out)

    def add_case(self, pick: str | None, section: str | None, suite: str, refuse: bool, picks: dict,
                 request: gr.Request) -> str:
        who = self._who(request)
        chosen, error = self._chosen(pick, picks, section if not refuse else "-")
        if error:
            return error
        path = (REPO_ROOT / (suite or DEFAULT_SUITE)).resolve()
        if REPO_ROOT.resolve() / "evals" not in path.parents or path.suffix != ".jsonl":
            return f"✗ スイートは evals/ の .jsonl ファイル / a suite is a .jsonl file under evals/: {md_inert(suite)}"
        out = []
        for qid, question, lang in _distinct(chosen):
            case = fixes.suite_case(question, lang, f"triage-{qid}", refuse,
                                    () if refuse else [section.partition("#")[0]],
                                    {"question_id": qid, "section": None if refuse else section, "by": who})
            try:
                fix = fixes.add_case(path, case)
            except fixes.FixError as exc:
                out.append(f"✗ {md_inert(str(exc))}")
                continue
            out.append(f"✓ `{path.relative_to(REPO_ROOT)}`\n\n```diff\n{_fenced(fix.diff)}```")
        _, skipped = triage.set_status(self.settings, [i for i, *_ in chosen], IN_PROGRESS, who,
                                       f"case:{path.relative_to(REPO_ROOT)}")
        return "\n\n".join(out + [f"⚠ {md_inert(s)}" for s in skipped])

    def add_alias(self, pick: str | None, term: str | None, alias: str, picks: dict, request: gr.Request) -> str:
        """WORD of the chosen question(s) as a glossary variant of TERM; one line of kb/glossary.yaml."""
        who = self._who(request)
        chosen, error = self._chosen(pick, picks, "-")
        if error:
            return error
        if not term:
            return "✗ 用語を選んでください / choose a glossary term"
        try:
            fix = fixes.add_alias(self.settings, term, alias)
        except fixes.FixError as exc:
            return f"✗ {md_inert(str(exc))}"
        _, skipped = triage.set_status(self.settings, [i for i, *_ in chosen], RESOLVED, who, f"alias:{term}")
        return "\n\n".join([f"✓ 「{md_inert(alias.strip())}」 → {md_inert(term)}\n\n```diff\n{_fenced(fix.diff)}```"]
                           + [f"⚠ {md_inert(s)}" for s in skipped]
                           + [self._reingest_and_reask(chosen[0][1], chosen[0][2])])

    def out_of_scope(self, pick: str | None, picks: dict, request: gr.Request) -> str:
        who = self._who(request)
        chosen, error = self._chosen(pick, picks, "-")
        if error:
            return error
        changed, skipped = triage.set_status(self.settings, [i for i, *_ in chosen], OUT_OF_SCOPE, who,
                                             "out-of-scope")
        return "\n\n".join([f"✓ 対象外 / out of scope: {len(changed)}"] + [f"⚠ {md_inert(s)}" for s in skipped])

    def _chosen(self, pick, picks, section):
        chosen = (picks or {}).get(pick or "")
        if not chosen:
            return None, "✗ 質問を選んでください / choose a question"
        if not section:
            return None, "✗ セクションを選んでください / choose a section"
        return chosen, ""

    def _reingest_and_reask(self, question: str, lang: str) -> str:
        try:
            report = fixes.reingest(self.settings)
        except Exception as exc:  # noqa: BLE001 - the fix is in the file; the owner can re-ingest by hand
            log.exception("re-ingest after a fix failed")
            return f"⚠ 再インデックス失敗 / re-ingest failed: {md_inert(str(exc))}"
        self.assistant.refresh()
        answer = self.assistant.ask(question, channel="admin")
        cited = ", ".join(answer.sections) or "–"
        state = "拒否 / refused" if answer.refused else f"回答 / answered ({answer.kind})"
        return (f"再インデックス {report.seconds:.1f}s / re-ingested. 同じ質問をもう一度 / asked again: "
                f"{state}; 出典 / cited: `{cited}`\n\n> {md_inert(answer.text[:400])}")


def _bound(demo) -> str | None:
    """The address the server listens on: serve() records it (the app is mounted in uvicorn); launch() sets
    server_name. Unknown counts as not loopback."""
    return getattr(demo, "bound_host", None) or getattr(demo, "server_name", None)


def _fenced(text: str) -> str:
    """A diff inside a ``` fence: a question holding ``` must not close it early."""
    return text.replace("```", "`\u200b``")


def _distinct(chosen):
    seen, out = set(), []
    for qid, question, lang in chosen:
        if (question, lang) not in seen:
            seen.add((question, lang))
            out.append((qid, question, lang))
    return out


def _glossary_terms(settings: Settings) -> list[str]:
    from bpo_assistant.glossary import Glossary

    try:
        return [t.term for t in Glossary.load(settings.kb_dir / "glossary.yaml").terms]
    except Exception:  # noqa: BLE001 - a broken glossary is kb check's to report; the owner can still type a term
        return []


def admin_tab(demo, assistant, settings: Settings) -> None:
    """The tab (hidden until the load event finds an admin) and its events; call inside build_app's gr.Tabs."""
    attach_question_log(assistant, settings, channel="chat")
    svc = AdminService(assistant, settings, demo)
    ui = dict(api_visibility="private")
    with gr.Tab(TITLE, id="admin", elem_id="bpo-tab-admin", visible=False) as tab:
        notice = gr.Markdown("", elem_id="bpo-admin-notice")
        refresh = gr.Button("キューを更新 / Refresh queue", size="sm", elem_id="bpo-admin-refresh")
        queue_df = gr.Dataframe(headers=QUEUE_COLUMNS, value=[], interactive=False, wrap=True,
                                label="トリアージ / Triage queue (未対応・対応中; 多い順・新しい順)", elem_id="bpo-admin-queue")
        picks = gr.State({})
        pick = gr.Dropdown([], label="質問またはテーマ / question or theme", elem_id="bpo-admin-pick")
        section = gr.Radio([], label="セクション (ルーター上位3件) / section (router top 3)", elem_id="bpo-admin-section")
        section_text = gr.Markdown("", elem_id="bpo-admin-section-text")
        with gr.Row():
            b_question = gr.Button("想定質問に追加 / Add as expected question", variant="primary",
                                   elem_id="bpo-admin-add-question")
            b_oos = gr.Button("対象外にする / Mark out of scope", elem_id="bpo-admin-oos")
        with gr.Row():
            suite = gr.Textbox(DEFAULT_SUITE, label="スイート / suite file", max_length=200, elem_id="bpo-admin-suite")
            refuse = gr.Checkbox(False, label="拒否すべき質問 / should be refused", elem_id="bpo-admin-refuse")
            b_case = gr.Button("スイートに追加 / Add to suite", elem_id="bpo-admin-add-case")
        with gr.Row():
            term = gr.Dropdown(_glossary_terms(settings), label="用語 / glossary term", allow_custom_value=True,
                               elem_id="bpo-admin-term")
            alias = gr.Textbox("", label="別名 / alias (e.g. PC)", max_length=100, elem_id="bpo-admin-alias")
            b_alias = gr.Button("用語の別名に追加 / Add glossary alias", elem_id="bpo-admin-add-alias")
        result = gr.Markdown("", elem_id="bpo-admin-result")
        b_maint = gr.Button("メンテナンス一覧 / Maintenance list", size="sm", elem_id="bpo-admin-maintenance")
        maint_df = gr.Dataframe(headers=MAINTENANCE_COLUMNS, value=[], interactive=False, wrap=True,
                                label="要メンテナンス / needs an owner (stale, review-due, few-questions)",
                                elem_id="bpo-admin-maintenance-table")
        gr.Markdown("### KPI\n\n" + "\n".join(f"- {f}" for f in kpi.FORMULAS.values()))
        kpi_df = gr.Dataframe(headers=kpi.COLUMNS, value=[], interactive=False, label="日次 / daily",
                              elem_id="bpo-admin-kpi")
        kpi_plot = gr.LinePlot(None, x="day", y="rate", color="metric", y_lim=[0, 1], elem_id="bpo-admin-kpi-plot",
                               label="KPI / day", x_title="日付 / day", y_title="率 / rate")
        kpi_week = gr.Dataframe(headers=kpi.COLUMNS, value=[], interactive=False, label="週次 (ISO週) / weekly (ISO week)",
                                elem_id="bpo-admin-kpi-week")
        kpi_reasons = gr.Dataframe(headers=kpi.REASON_COLUMNS, value=[], interactive=False, wrap=True,
                                   label="拒否理由別 (週次) / refusals by reason (weekly)", elem_id="bpo-admin-kpi-reasons")

    demo.load(svc.gate, None, [tab, notice], queue=False, **ui)
    loaded = [queue_df, pick, picks, kpi_df, kpi_plot, kpi_week, kpi_reasons]
    tab.select(svc.load, None, loaded, **ui)
    refresh.click(svc.load, None, loaded, **ui)
    pick.change(svc.sections, [pick, picks], [section, section_text], **ui)
    b_question.click(svc.add_question, [pick, section, picks], result, **ui).then(svc.load, None, loaded, **ui)
    b_case.click(svc.add_case, [pick, section, suite, refuse, picks], result, **ui).then(svc.load, None, loaded, **ui)
    b_alias.click(svc.add_alias, [pick, term, alias, picks], result, **ui).then(svc.load, None, loaded, **ui)
    b_maint.click(svc.maintenance, None, maint_df, **ui)
    b_oos.click(svc.out_of_scope, [pick, picks], result, **ui).then(svc.load, None, loaded, **ui)
