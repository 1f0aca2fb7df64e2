"""The admin tab's one-click fixes: the router's top-3 sections for the chosen question, and the fixes (expected
question, glossary alias, curated draft, suite case, out of scope); their layout is in ui.admin. Each kb fix is
followed by an incremental re-ingest and the same question asked again, so the owner sees the fix work.

FixesPanel is mixed into ui.admin.AdminService, which provides settings, assistant and _who (the admin check
every handler runs first: the events are reachable by fn_index whatever the tab's visibility).
"""

from __future__ import annotations

import logging

import gradio as gr

from bpo_assistant.owners import alias as aliases
from bpo_assistant.owners import drafts, fixes, triage
from bpo_assistant.owners.db import IN_PROGRESS, OUT_OF_SCOPE, RESOLVED
from bpo_assistant.settings import REPO_ROOT

from .render import md_inert

log = logging.getLogger(__name__)

DEFAULT_SUITE = "evals/suites/triage.jsonl"


class FixesPanel:
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

    def add_question(self, pick: str | None, section: str | None, picks: dict, request: gr.Request) -> str:
        who = self._who(request)
        chosen, error = _chosen(pick, picks, section)
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

    def add_draft(self, pick: str | None, section: str | None, picks: dict, request: gr.Request) -> str:
        """A draft curated answer quoting `section`, for the chosen question(s) and the rest of their theme."""
        who = self._who(request)
        chosen, error = _chosen(pick, picks, section)
        if error:
            return error
        lang = chosen[0][2]
        mine = [r for r in _distinct([*chosen, *_theme_of(pick, picks)]) if r[2] == lang]
        try:
            draft = drafts.draft_curated(self.settings, lang, section, [q for _, q, _ in mine], who)
        except fixes.FixError as exc:
            return f"✗ {md_inert(str(exc))}"
        wordings = {q for _, q, _ in mine}
        ids = [i for i, q, lg in [*chosen, *_theme_of(pick, picks)] if lg == lang and q in wordings]
        _, skipped = triage.set_status(self.settings, list(dict.fromkeys(ids)), RESOLVED, who, f"curated:{section}")
        return "\n\n".join([f"✓ 下書き / draft `{md_inert(draft.id)}` ({md_inert(draft.reason)}); "
                            "レビュー待ち / to be reviewed\n\n"
                            f"```diff\n{_fenced(draft.diff)}```"]
                           + [f"⚠ {md_inert(s)}" for s in skipped]
                           + [self._reingest_and_reask(chosen[0][1], lang)])

    def add_case(self, pick: str | None, section: str | None, suite: str, refuse: bool, picks: dict,
                 request: gr.Request) -> str:
        who = self._who(request)
        chosen, error = _chosen(pick, picks, section if not refuse else "-")
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
        chosen, error = _chosen(pick, picks, "-")
        if error:
            return error
        if not term:
            return "✗ 用語を選んでください / choose a glossary term"
        try:
            fix = aliases.add_alias(self.settings, term, alias)
        except fixes.FixError as exc:
            return f"✗ {md_inert(str(exc))}"
        _, skipped = triage.set_status(self.settings, [i for i, *_ in chosen], RESOLVED, who, f"alias:{term}")
        return "\n\n".join([f"✓ 「{md_inert(alias.strip())}」 → {md_inert(term)}\n\n```diff\n{_fenced(fix.diff)}```"]
                           + [f"⚠ {md_inert(s)}" for s in skipped]
                           + [self._reingest_and_reask(chosen[0][1], chosen[0][2])])

    def out_of_scope(self, pick: str | None, picks: dict, request: gr.Request) -> str:
        who = self._who(request)
        chosen, error = _chosen(pick, picks, "-")
        if error:
            return error
        changed, skipped = triage.set_status(self.settings, [i for i, *_ in chosen], OUT_OF_SCOPE, who,
                                             "out-of-scope")
        return "\n\n".join([f"✓ 対象外 / out of scope: {len(changed)}"] + [f"⚠ {md_inert(s)}" for s in skipped])

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


def _chosen(pick, picks, section):
    chosen = (picks or {}).get(pick or "")
    if not chosen:
        return None, "✗ 質問を選んでください / choose a question"
    if not section:
        return None, "✗ セクションを選んでください / choose a section"
    return chosen, ""


def _theme_of(pick: str | None, picks: dict) -> list:
    """The whole theme of a chosen question (the queue's picks hold each theme under t<id>)."""
    if not pick or not pick.startswith("q"):
        return []
    qid = int(pick[1:])
    return next((rows for key, rows in (picks or {}).items()
                 if key.startswith("t") and any(r[0] == qid for r in rows)), [])


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
