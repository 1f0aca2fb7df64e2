"""Extractive composer: quote the few kb sentences that answer the question, each with its [n] source.

No LLM: sentences are picked by their ingest-time vectors (never re-embedded here) plus keyword overlap,
redundant ones dropped, grouped by source section in reading order, and cited. Every sentence of the
answer is a kb sentence, so every statement is traceable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .retrieval import Hit
from .text import tokenize
from .types import AnswerSentence, Citation, Sentence

LEAD = {"ja": "ナレッジベースによると:", "en": "According to our knowledge base:"}
SOURCES = {"ja": "出典:", "en": "Sources:"}
# Weights chosen on evals/suites/dev.jsonl (README "Calibration"); e5 cosines are compressed (0.75–0.92), so
# small differences matter.
OVERLAP_WEIGHT = 0.25  # keyword overlap complements e5 similarity
RANK_WEIGHT = 0.03  # trust in the hybrid retriever's order when choosing the primary section
PRIMARY_MAX = 4  # sentences quoted from the primary section
OTHER_FLOOR = 0.02  # another section's sentence joins only when nearly as good as the primary's best
REDUNDANT_COS = 0.96
DEFINES_BONUS = 0.1


@dataclass(frozen=True)
class Picked:
    sentence: Sentence
    score: float
    cosine: float
    overlap: float


def sentence_tokens(index, i: int) -> set[str]:
    cache = getattr(index, "_sentence_tokens", None)
    if cache is None:
        cache = index._sentence_tokens = {}
    if i not in cache:
        cache[i] = set(tokenize(index.sentences[i].text))
    return cache[i]


def overlap(query_tokens: set[str], tokens: set[str]) -> float:
    return len(query_tokens & tokens) / len(query_tokens) if query_tokens else 0.0


def pick_sentences(index, hits: list[Hit], qvec: np.ndarray, query: str, max_sentences: int) -> list[Picked]:
    """The answer is built around one section: our kb keeps one topic per section, so quoting the best section
    in reading order answers better than collecting look-alike sentences from everywhere. Sentences of other
    sections join only when they score as well as the primary section's best one."""
    q_tokens = set(tokenize(query))
    candidates: dict[int, Picked] = {}
    section_rank: dict[tuple[str, str, str], float] = {}
    for rank, hit in enumerate(hits):
        rank_bonus = RANK_WEIGHT * (len(hits) - rank) / max(len(hits), 1)
        key = (hit.chunk.lang, hit.chunk.doc_id, hit.chunk.section_id)
        # "What is X?": the glossary's defining section leads the answer.
        section_rank.setdefault(key, rank_bonus + (DEFINES_BONUS if hit.defines else 0.0))
        for i in index.sentences_by_chunk.get(hit.chunk.id, []):
            if i in candidates:  # overlapping chunks share sentences
                continue
            cos = float(index.sentence_vectors[i] @ qvec)
            ov = overlap(q_tokens, sentence_tokens(index, i))
            candidates[i] = Picked(index.sentences[i], cos + OVERLAP_WEIGHT * ov, cos, ov)
    if not candidates:
        return []
    by_section: dict[tuple[str, str, str], list[tuple[int, Picked]]] = {}
    for i, p in candidates.items():
        s = p.sentence
        by_section.setdefault((s.lang, s.doc_id, s.section_id), []).append((i, p))
    scored = {k: max(p.score for _, p in v) + section_rank.get(k, 0.0) for k, v in by_section.items()}
    primary = max(scored, key=scored.get)
    best = max(p.score for _, p in by_section[primary])
    members = sorted(by_section[primary], key=lambda ip: -ip[1].score)
    chosen = members[:PRIMARY_MAX]
    others = sorted((ip for k, v in by_section.items() if k != primary for ip in v), key=lambda ip: -ip[1].score)
    for i, p in others:
        if len(chosen) >= max_sentences or p.score < best - OTHER_FLOOR:
            break
        if any(float(index.sentence_vectors[i] @ index.sentence_vectors[j]) > REDUNDANT_COS for j, _ in chosen):
            continue
        chosen.append((i, p))
    return [p for _, p in chosen]


def compose(index, picked: list[Picked], lang: str, max_chars: int, lead: str | None = None
            ) -> tuple[str, tuple[AnswerSentence, ...], tuple[Citation, ...]]:
    """Lead line, the sentences (bullets when several) with [n], then the source list; within max_chars."""
    while True:
        text, sentences, citations = _render(index, picked, lang, lead)
        if len(text) <= max_chars or len(picked) <= 1:
            return text, sentences, citations
        picked = picked[:-1]  # drop the weakest sentence, never cut one in half


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
