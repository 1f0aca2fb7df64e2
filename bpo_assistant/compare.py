"""Comparison questions ("AとBの違い", "A vs B", "compare A and B") answered as a cited Markdown table.

The table comes from kb/comparisons.yaml, not from retrieval: each cell is a short phrase that names the
kb section supporting it, so the whole table is cited cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import phrasebook
from .glossary import Glossary
from .types import Citation

TABLE_LEAD = {"ja": "{cols}の比較です。", "en": "Here is how {cols} compare."}
NOT_COVERED = "not covered"
SOURCES = {"ja": "出典:", "en": "Sources:"}


@dataclass(frozen=True)
class Table:
    id: str
    title: dict
    columns: list[dict]
    rows: list[dict]


def load_tables(path: Path) -> list[Table]:
    if not Path(path).exists():
        return []
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return [Table(t["id"], t["title"], t["columns"], t["rows"]) for t in data.get("tables", [])]


def is_comparison(question: str, n_terms: int) -> bool:
    """"AとBの違い" needs two terms; "ITOとの違いは？" (one term + a difference word) compares it with BPO.
    A bare 比べる with one term ("今のコストと比べて") is not a comparison of concepts."""
    if n_terms >= 2:
        return bool(phrasebook.COMPARISON_CUE.search(question))
    return n_terms == 1 and bool(phrasebook.DIFFERENCE_CUE.search(question))


def pick_columns(question: str, tables: list[Table], glossary: Glossary) -> tuple[Table, list[dict]] | None:
    """The table naming most of the question's terms, and those columns; a single named column is compared
    with the table's first (BPO, or the other contract type)."""
    mentioned = [t.term for t in glossary.find(question)]
    aliases = {"委任契約": "準委任契約"}  # 委任 and 準委任 share a column in the contracts table
    best: tuple[Table, list[dict]] | None = None
    for table in tables:
        by_term = {c["term"]: c for c in table.columns}
        cols: list[dict] = []
        for name in mentioned:
            col = by_term.get(aliases.get(name, name))
            if col and col not in cols:
                cols.append(col)
        if cols and (best is None or len(cols) > len(best[1])):
            best = (table, cols)
    if best is None:
        return None
    table, cols = best
    if len(cols) == 1 and len(table.columns) >= 2:
        other = table.columns[0] if table.columns[0] is not cols[0] else table.columns[1]
        cols = [other, cols[0]]
    return table, cols


def render(table: Table, cols: list[dict], lang: str, section_lookup, max_chars: int = 10_000
           ) -> tuple[str, tuple[Citation, ...]]:
    """Markdown table with [n] in every cell, within max_chars (trailing rows go first);
    `section_lookup(lang, doc, section)` -> (title, section title, text)."""
    rows = list(table.rows)
    while True:
        text, cits = _render(table, rows, cols, lang, section_lookup)
        if len(text) <= max_chars or len(rows) <= 1:
            return text, cits
        rows.pop()


def _render(table: Table, rows: list[dict], cols: list[dict], lang: str, section_lookup):
    citations: dict[tuple[str, str], Citation] = {}

    def cite(doc: str, section: str) -> int:
        key = (doc, section)
        if key not in citations:
            title, section_title, text = section_lookup(lang, doc, section)
            citations[key] = Citation(len(citations) + 1, doc, title, section_title, section, lang, text)
        return citations[key].n

    header = "| | " + " | ".join(c[lang] for c in cols) + " |"
    lines = [TABLE_LEAD[lang].format(cols=("と" if lang == "ja" else " and ").join(c[lang] for c in cols)), "",
             header, "|" + "---|" * (len(cols) + 1)]
    for row in rows:
        cells = [row["cells"].get(c["id"]) for c in cols]
        # A row where the kb is silent for one side compares nothing; leave it out rather than cite silence.
        if not all(cells) or any(cell["en"] == NOT_COVERED for cell in cells):
            continue
        rendered = [f"{_cell(cell[lang])} [{cite(cell['doc'], cell['section'])}]" for cell in cells]
        lines.append(f"| {row['label'][lang]} | " + " | ".join(rendered) + " |")
    cits = tuple(citations.values())
    lines += ["", SOURCES[lang]] + [f"- {c.label}" for c in cits]
    return "\n".join(lines), cits


def _cell(text: str) -> str:
    return str(text).replace("|", "／")


def _routed_elsewhere(turn, citations, floor: float) -> bool:
    """Two concept words and a cue are not enough when the trained router is sure the question belongs to a
    document the table never cites (the bank knows what is asked better than two glossary hits do)."""
    if not turn.routed or turn.routed[0][1] < floor:
        return False
    return turn.routed[0][0].split("#")[0] not in {c.doc_id for c in citations}


def answer(turn, kb, settings) -> "Answer | None":
    """Stage: "AとBの違い" (or one term + a difference word) answered from kb/comparisons.yaml, when a table
    covers the terms and, under a topic filter, every cited document is in the topic. A question asking for an
    example (「経理で例えると」) passes: the table has the definitions, a section has the example."""
    from .types import Answer

    n_terms = len(kb.glossary.find(turn.query))
    if not turn.query or "example" in turn.intents or not is_comparison(turn.query, n_terms):
        return None
    table = pick_columns(turn.query, kb.tables, kb.glossary)
    if table is None:
        return None
    text, citations = render(*table, turn.lang, kb.section, settings.max_answer_chars)
    if not kb.within(citations, turn.topic) or _routed_elsewhere(turn, citations, settings.compare_router_veto):
        return None
    return Answer(text, (), citations, standalone_query=turn.query, lang=turn.lang, kind="comparison",
                  notice=turn.notice, retrieved=kb.chunk_ids(citations), confidence=1.0,
                  reason=f"comparison table {table[0].id}: " + ", ".join(c["id"] for c in table[1]),
                  timings=turn.timer.done("compose"))
