"""Onboarding and Knowledge tabs, as pure Markdown renderers (the layout lives in app.py).

Onboarding: curated (vetted) answers grouped by topic in learning order, filterable by a search text, each with
its citations, and the BPO/ITO/shared services/BPR comparison table. Knowledge: a document's sections and the
index status.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence

from bpo_assistant.text import normalize

from .labels import t, topic_name, topic_rank
from .render import SectionLookup, esc, md_inert, md_inert_keep_quotes, render_sources


def _fold(text: str) -> str:
    return normalize(text or "").lower()


def matches(item, query: str, lang: str) -> bool:
    """Every whitespace-separated term of the query occurs in a question, the answer or the topic name."""
    terms = [_fold(x) for x in (query or "").split() if x.strip()]
    if not terms:
        return True
    hay = _fold(" ".join([*getattr(item, "questions", ()), getattr(item, "answer", ""),
                          topic_name(getattr(item, "topic", ""), lang), getattr(item, "topic", "")]))
    return all(term in hay for term in terms)


def group_curated(items: Iterable, lang: str, query: str = "") -> list[tuple[str, list]]:
    """[(topic, [answers])] for one language, topics in learning order, answers in file order."""
    groups: dict[str, list] = {}
    for item in items:
        if getattr(item, "lang", lang) != lang or not matches(item, query, lang):
            continue
        groups.setdefault(getattr(item, "topic", "") or "other", []).append(item)
    return sorted(groups.items(), key=lambda kv: topic_rank(kv[0]))


def render_curated_item(item, lang: str, lookup: SectionLookup | None = None, open_: bool = False) -> str:
    """One vetted answer as a collapsible card: the question and badges as its summary, then the answer
    (Markdown), the other phrasings of the question and the sources block."""
    questions = list(getattr(item, "questions", ()) or [])
    head = questions[0] if questions else getattr(item, "id", "")
    badges = f'<span class="bpo-badge bpo-verified">✔ {esc(t(lang, "verified"))}</span>'
    if getattr(item, "stale", False):
        badges += f' <span class="bpo-badge bpo-stale">⚠ {esc(t(lang, "stale"))}</span>'
    summary = f'<summary><span class="bpo-card-q">{esc(head)}</span> {badges}</summary>'
    extra = ""
    if len(questions) > 1:
        extra += f'<div class="bpo-qs">{esc(t(lang, "questions"))}: {esc(" / ".join(questions[1:]))}</div>'
    extra += render_sources(getattr(item, "citations", ()) or (), lang, lookup)
    # Blank lines around the answer let the Markdown inside the <details> block render as Markdown.
    return "\n".join([
        f'<details class="bpo-card"{" open" if open_ else ""} data-id="{esc(getattr(item, "id", ""))}">{summary}', "",
        md_inert_keep_quotes(getattr(item, "answer", "")), "",
        f'<div class="bpo-extra">{extra}</div></details>', "",
    ])


def section_order(docs: Sequence) -> dict[tuple[str, str], int]:
    """(doc id, section id) -> reading position in the kb (documents in learning order, sections in file order)."""
    order: dict[tuple[str, str], int] = {}
    for doc in sorted(docs, key=lambda d: (topic_rank(d.topic), d.id)):
        for sec in doc.sections:
            order.setdefault((doc.id, sec.id), len(order))
    return order


def _learning_key(item, order: dict[tuple[str, str], int]) -> tuple[int, int]:
    """Within a topic: "what is X?" first, then by where the cited sections stand in the kb."""
    q = normalize((list(getattr(item, "questions", ()) or [""])[0])).lower()
    definitional = "とは" in q or q.startswith(("what is", "what are"))
    cited = [order.get((c.doc_id, c.section_id), 10**6) for c in getattr(item, "citations", ()) or ()]
    return (0 if definitional else 1, min(cited, default=10**6))


def render_curated(items: Iterable, lang: str, query: str = "", lookup: SectionLookup | None = None,
                   order: dict[tuple[str, str], int] | None = None) -> str:
    """Cards grouped by topic in learning order; while searching, the matching cards are open."""
    order, query = order or {}, query or ""
    groups = group_curated(items, lang, query)
    if not groups:
        return f"_{md_inert(t(lang, 'onb_none'))}_"
    out = []
    for topic, answers in groups:
        out.append(f"### {md_inert(topic_name(topic, lang))} ({len(answers)})\n")
        out.extend(render_curated_item(a, lang, lookup, open_=bool(query.strip()))
                   for a in sorted(answers, key=lambda a: _learning_key(a, order)))
    return "\n".join(out)


def stale_count(items: Iterable) -> int:
    return sum(1 for i in items if getattr(i, "stale", False))


# -- Knowledge tab ---------------------------------------------------------------------------------------------
def doc_choices(docs: Sequence) -> list[tuple[str, str]]:
    ordered = sorted(docs, key=lambda d: (topic_rank(d.topic), d.title))
    return [(f"{d.title} ({d.id})", d.id) for d in ordered]


def render_doc(doc, lang: str) -> str:
    if doc is None:
        return ""
    lines = [f"## {md_inert(doc.title)}", "",
             f'<div class="bpo-doc-meta">{esc(topic_name(doc.topic, lang))} · <code>{esc(doc.id)}</code> · '
             f"{esc(doc.lang)}</div>", ""]
    for sec in doc.sections:
        lines += [f"### {md_inert(sec.title)}", "", md_inert_keep_quotes(sec.text), ""]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return md_inert(str(value)).replace("|", "\\|").replace("\n", " ")


# An absolute path on the server (POSIX or Windows, at least one directory), not the path part of a URL.
_ABS_PATH = re.compile(r"(?<![\w.:/\\])(?:[A-Za-z]:)?[\\/](?:[^\s\\/|'\"()]+[\\/])+[^\s\\/|'\"()]*")
_PRIVATE_KEYS = {"data_dir", "kb_dir", "path", "dir"}


def public_text(text: str, roots: Sequence[str] = ()) -> str:
    """`text` without the server's paths: under one of `roots` (kb, data dir) a path becomes relative to it;
    any other absolute path is cut to its last component."""
    s = str(text)
    for root in sorted((str(r).rstrip("/\\") for r in roots if str(r).strip("/\\")), key=len, reverse=True):
        s = s.replace(root + os.sep, "").replace(root + "/", "")
    return _ABS_PATH.sub(lambda m: re.split(r"[\\/]", m.group(0).rstrip("/\\"))[-1] or "…", s)


def _public(value, roots: Sequence[str]):
    if isinstance(value, dict):
        return {k: _public(v, roots) for k, v in value.items() if str(k) not in _PRIVATE_KEYS}
    if isinstance(value, (list, tuple)):
        return [_public(v, roots) for v in value]
    return public_text(value, roots) if isinstance(value, str) else value


def render_status(info: dict | None, stale: int, lang: str, error: str = "", roots: Sequence[str] = ()) -> str:
    """The index status as a table. It is shown to every user, so it holds no server path: the data directory
    is left out and every other path is made relative to `roots` or cut to its file name."""
    rows = [("stale curated answers" if lang == "en" else "要再確認の確認済み回答", stale)]
    for key, value in _public(info or {}, roots).items():
        rows.append((str(key), value))
    head = "| Item | Value |" if lang == "en" else "| 項目 | 値 |"
    table = [head, "|---|---|"] + [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    note = f"\n\n_{md_inert(public_text(error, roots))}_" if error else ""
    return "\n".join(table) + note
