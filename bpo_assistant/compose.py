"""Extractive composer: quote the few kb sentences that answer the question, each with its [n] source.

No LLM: picking.py picks the sentences by their ingest-time vectors (never re-embedded) plus keyword overlap;
here they are grouped by source section in reading order and cited. Every sentence of the
answer is a kb sentence, so every statement is traceable.
"""

from __future__ import annotations

from .phrasebook import LEAD, SOURCES
from .picking import Picked
from .types import AnswerSentence, Citation

# Which sentences to quote is chosen in picking.py; this module renders them.


def compose(index, picked: list[Picked], lang: str, max_chars: int, lead: str | None = None
            ) -> tuple[str, tuple[AnswerSentence, ...], tuple[Citation, ...]]:
    """Lead line, the sentences (bullets when several) with [n], then the source list; within max_chars."""
    while True:
        text, sentences, citations = _render(index, picked, lang, lead)
        if len(text) <= max_chars or len(picked) <= 1:
            return text, sentences, citations
        picked = _without_weakest(picked)  # never cut a sentence in half


# e5 rates a section's parallel sentences (「…は品質向上につながります」「…は標準化につながります」) within a
# thousandth of each other, and which of them is "weakest" then flips between CPUs (AVX2 vs AVX-512 kernels of the
# embedder). Below this margin the score says nothing: reading order decides, and the later sentence goes.
NOISE = 1e-3


def _without_weakest(picked: list[Picked]) -> list[Picked]:
    """The last sentence is the weakest (picking.py orders them so); a near-tie in its section loses its later one."""
    last = picked[-1].sentence
    ties = [k for k, p in enumerate(picked)
            if (p.sentence.lang, p.sentence.doc_id, p.sentence.section_id) == (last.lang, last.doc_id, last.section_id)
            and abs(p.score - picked[-1].score) <= NOISE]
    drop = max(ties, key=lambda k: picked[k].sentence.ordinal)
    return picked[:drop] + picked[drop + 1:]


def _render(index, picked: list[Picked], lang: str, lead: str | None):
    # Sections are numbered in the order of their best sentence (the most direct answer comes first).
    groups: dict[tuple[str, str, str], list[Picked]] = {}
    for p in picked:
        s = p.sentence
        groups.setdefault((s.lang, s.doc_id, s.section_id), []).append(p)
    citations: list[Citation] = []
    answer_sentences: list[AnswerSentence] = []
    for n, members in enumerate(groups.values(), start=1):
        members.sort(key=lambda p: p.sentence.ordinal)  # reading order inside a section
        chunk = index.chunks[members[0].sentence.chunk_id]
        citations.append(Citation(n, chunk.doc_id, chunk.title, chunk.section_title, chunk.section_id, chunk.lang,
                                  " ".join(p.sentence.text for p in members)))
        answer_sentences.extend(AnswerSentence(p.sentence.text, (n,)) for p in members)
    lines = [lead if lead is not None else LEAD.get(lang, LEAD["ja"]), ""]
    if len(answer_sentences) == 1:
        lines.append(f"{answer_sentences[0].text} [{answer_sentences[0].citations[0]}]")
    else:
        lines.extend(f"- {s.text} [{s.citations[0]}]" for s in answer_sentences)
    lines += ["", SOURCES.get(lang, SOURCES["ja"])]
    lines += [f"- {c.label}" for c in citations]
    return "\n".join(lines), tuple(answer_sentences), tuple(citations)
