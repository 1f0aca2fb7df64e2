"""`bpo-assistant triage resolve ID… --as …`: one fix for the given questions, then their status.

    question:DOC#SECTION   each question becomes an expected question of the section (対応済み)
    alias:TERM --alias W   W becomes a glossary variant of TERM, one line however many questions used it (対応済み)
    curated:DOC#SECTION    a draft curated answer quoting the section, for the questions and their themes' (対応済み)
    case:SUITE [--doc D]   each question becomes a suite case, refuse without --doc (対応中: facts are the reviewer's)
    out-of-scope           no file changes (対象外)

The fix's diff goes to stdout; a refused fix prints the reason and changes neither files nor statuses (exit 1).
"""

from __future__ import annotations

import sys

from sqlalchemy import select

from ..settings import Settings
from .db import IN_PROGRESS, OPEN, OUT_OF_SCOPE, RESOLVED, engine_for, questions
from .triage import queue, set_status

KINDS = ("question", "alias", "curated", "case", "out-of-scope")


def theme_mates(settings: Settings, assistant, ids: list[int]) -> list[tuple[int, str, str]]:
    """(id, question, lang) of every open question sharing a theme with one of `ids`, the themes as the queue
    groups them now."""
    wanted, out = set(ids), []
    for th in queue(settings, assistant, (OPEN, IN_PROGRESS)):
        if wanted & {i.id for i in th.items}:
            out += [(i.id, i.question, i.lang) for i in th.items if i.id not in wanted]
    return out


def _curated(settings: Settings, label: str, asked: list[tuple[int, str, str]], by: str):
    """The draft for `asked` plus their theme mates of the same language; (draft, ids it answers)."""
    from bpo_assistant.ingest.pipeline import ensure_index

    from ..assistant import Assistant
    from .drafts import draft_curated

    ensure_index(settings)  # the themes are the queue's: e5 vectors need the index's embedder and bank
    mates = theme_mates(settings, Assistant.from_settings(settings), [i for i, _, _ in asked])
    lang = asked[0][2]
    mine = [r for r in [*asked, *mates] if r[2] == lang]
    draft = draft_curated(settings, lang, label, [q for _, q, _ in mine], by)
    return draft, [i for i, _, _ in mine]


def cli_resolve(settings: Settings, ids: list[int], how: str, by: str, doc: str | None = None,
                alias: str | None = None) -> int:
    from . import alias as aliases
    from . import fixes

    kind, _, arg = how.partition(":")
    if kind not in KINDS or (kind != "out-of-scope" and not arg) or (kind in ("question", "curated") and "#" not in arg):
        print(f"error: --as {how!r}: use question:DOC#SECTION, alias:TERM, curated:DOC#SECTION, case:SUITE.jsonl or "
              "out-of-scope", file=sys.stderr)
        return 2
    if (kind == "alias") != bool(alias):  # the word comes from the owner: a question is rarely a synonym itself
        print("error: --as alias:TERM needs --alias WORD (the questions' word for TERM), and --alias only goes "
              "with alias:TERM", file=sys.stderr)
        return 2
    with engine_for(settings).connect() as conn:
        found = {r.id: r for r in conn.execute(select(questions.c.id, questions.c.question, questions.c.lang)
                                               .where(questions.c.id.in_(ids)))}
    missing = [i for i in ids if i not in found]
    if missing:
        print(f"error: no question #{', #'.join(map(str, missing))} in the log", file=sys.stderr)
        return 2
    status, closing = OUT_OF_SCOPE, list(dict.fromkeys(ids))
    try:
        if kind == "alias":  # one glossary line, however many questions used the word
            sys.stdout.write(aliases.add_alias(settings, arg, alias).diff)
            status = RESOLVED
        elif kind == "curated":
            draft, closing = _curated(settings, arg, [(i, found[i].question, found[i].lang) for i in closing], by)
            sys.stdout.write(draft.diff)
            print(f"draft {draft.path}: {draft.reason}", file=sys.stderr)
            status = RESOLVED
        for i in dict.fromkeys(ids):
            r = found[i]
            if kind == "question":
                sys.stdout.write(fixes.add_expected_question(settings, r.lang, arg, r.question).diff)
                status = RESOLVED
            elif kind == "case":  # without --doc the case says "refuse"; with it, "answer from DOC"
                case = fixes.suite_case(r.question, r.lang, f"triage-{i}", not doc, [doc] if doc else (),
                                        {"question_id": i, "by": by})
                sys.stdout.write(fixes.add_case(arg, case).diff)
                status = IN_PROGRESS
    except fixes.FixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _, skipped = set_status(settings, closing, status, by, how)
    for s in skipped:
        print(s, file=sys.stderr)
    return 0
