"""「ナレッジ管理 / Knowledge admin」 tab: the triage queue, one-click fixes, and the KPIs of the question log.

Who sees it: with BPO_AUTH_FILE, the logins whose line has the role `admin` (see ui/auth.py; BPO_ADMINS, the
names that stood in before roles, still counts); without a login, only a server bound to loopback (127.0.0.1,
localhost, ::1), where whoever reaches the page sits at the machine. The tab is hidden until the page's load event
says the visitor is an admin, and every handler checks the gr.Request's login again: the events are private
(not on the API page, refused by gradio_client), but a client that posts to the queue by fn_index reaches them
anyway, so visibility alone would protect nothing. The tab is built empty: no queue data goes into the page
config.

`admin_tab(demo, assistant, settings)` is called inside build_app's gr.Tabs; it also registers the question log
on the chat's Assistant (channel "chat"). This module holds the gate and the queue; the panels are
admin_fixes.py (one-click fixes) and admin_kpis.py (KPIs, maintenance list).
"""

from __future__ import annotations

import time

import gradio as gr

from bpo_assistant.owners import triage
from bpo_assistant.owners.qlog import attach_question_log
from bpo_assistant.settings import Settings

from . import admin_fixes
from .admin_fixes import FixesPanel
from .admin_kpis import KpiPanel, build_kpi_panel, build_maintenance_panel
from .auth import ADMIN, role_of


LOOPBACK = ("127.0.0.1", "localhost", "::1")
TITLE = "ナレッジ管理 / Knowledge admin"
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


class AdminService(FixesPanel, KpiPanel):
    """Every handler of the tab; each checks the request's login first (_who)."""

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


def _bound(demo) -> str | None:
    """The address the server listens on: serve() records it (the app is mounted in uvicorn); launch() sets
    server_name. Unknown counts as not loopback."""
    return getattr(demo, "bound_host", None) or getattr(demo, "server_name", None)


def _glossary_terms(settings: Settings) -> list[str]:
    from bpo_assistant.glossary import Glossary

    try:
        return [t.term for t in Glossary.load(settings.kb_dir / "glossary.yaml").terms]
    except Exception:  # noqa: BLE001 - a broken glossary is kb check's to report; the owner can still type a term
        return []


def _fixes_panel(settings: Settings) -> dict:
    """The section choice, the fix buttons and the result (wired by wire_fixes once the tab is drawn)."""
    c = {"section": gr.Radio([], label="セクション (ルーター上位3件) / section (router top 3)", elem_id="bpo-admin-section"),
         "section_text": gr.Markdown("", elem_id="bpo-admin-section-text")}
    with gr.Row():
        c["question"] = gr.Button("想定質問に追加 / Add as expected question", variant="primary",
                                  elem_id="bpo-admin-add-question")
        c["draft"] = gr.Button("回答の下書きを作成 / Draft a curated answer", elem_id="bpo-admin-add-draft")
        c["oos"] = gr.Button("対象外にする / Mark out of scope", elem_id="bpo-admin-oos")
    with gr.Row():
        c["suite"] = gr.Textbox(admin_fixes.DEFAULT_SUITE, label="スイート / suite file", max_length=200,
                                elem_id="bpo-admin-suite")
        c["refuse"] = gr.Checkbox(False, label="拒否すべき質問 / should be refused", elem_id="bpo-admin-refuse")
        c["case"] = gr.Button("スイートに追加 / Add to suite", elem_id="bpo-admin-add-case")
    with gr.Row():
        c["term"] = gr.Dropdown(_glossary_terms(settings), label="用語 / glossary term", allow_custom_value=True,
                                elem_id="bpo-admin-term")
        c["alias"] = gr.Textbox("", label="別名 / alias (e.g. PC)", max_length=100, elem_id="bpo-admin-alias")
        c["add_alias"] = gr.Button("用語の別名に追加 / Add glossary alias", elem_id="bpo-admin-add-alias")
    c["result"] = gr.Markdown("", elem_id="bpo-admin-result")
    return c


def _wire_fixes(svc, c: dict, pick, picks, loaded: list, ui: dict) -> None:
    """Each fix writes its result, then reloads the queue and KPIs (`loaded`)."""
    pick.change(svc.sections, [pick, picks], [c["section"], c["section_text"]], **ui)
    for button, fn, inputs in ((c["question"], svc.add_question, [pick, c["section"], picks]),
                               (c["draft"], svc.add_draft, [pick, c["section"], picks]),
                               (c["case"], svc.add_case, [pick, c["section"], c["suite"], c["refuse"], picks]),
                               (c["add_alias"], svc.add_alias, [pick, c["term"], c["alias"], picks]),
                               (c["oos"], svc.out_of_scope, [pick, picks])):
        button.click(fn, inputs, c["result"], **ui).then(svc.load, None, loaded, **ui)


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
        fix_panel = _fixes_panel(settings)
        build_maintenance_panel(svc, ui)
        kpi_outputs = build_kpi_panel()

    demo.load(svc.gate, None, [tab, notice], queue=False, **ui)
    loaded = [queue_df, pick, picks, *kpi_outputs]
    tab.select(svc.load, None, loaded, **ui)
    refresh.click(svc.load, None, loaded, **ui)
    _wire_fixes(svc, fix_panel, pick, picks, loaded, ui)
