"""Which kb sentences an answer quotes: per chosen section its lead sentence and the sentences nearest the
question and its intent, plus at most one "stray" — the best sentence of the whole kb when it lies outside them.

Sentences are scored by their ingest-time vectors (never re-embedded) + keyword overlap + an intent bonus. The stray
exists because the kb states one fact per sentence and sections are narrow: 「請負で発注側が管理すべきことは？」 routes
to the contract's risks while 「品質と納期を厳しく管理する」 sits in its definition; 「BPOって昔はどういう業務が中心？」
routes to the overview while 「かつては事務作業やコールセンター業務が中心」 opens the IT section. Choosing sections can
only be so right on 0.93–0.97 cosines; a sentence-level search over every sentence catches the fact they missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import phrasebook
from .text import tokenize
from .types import Sentence

REDUNDANT_COS = 0.96
STRAY_POOL = 20  # best sentences of the language looked at for a stray


@dataclass(frozen=True)
class Picked:
    sentence: Sentence
    score: float
    cosine: float
    overlap: float


def pick(turn, kb, chosen: list[tuple[str, str, str]], settings) -> list[Picked]:
    """`chosen` section keys (lang, doc, section), best first; the first gets most of the sentence budget."""
    q_tokens = set(tokenize(turn.query))
    budget = [settings.max_sentences - 2 * (len(chosen) - 1)] + [2] * (len(chosen) - 1)
    picked: list[tuple[int, Picked]] = []
    for key, cap in zip(chosen, budget):
        scored = [(i, _score(turn, kb, i, q_tokens, settings)) for i in kb.section_sentences.get(key, ())]
        if not scored:
            continue
        lead, rest = scored[0], sorted(scored[1:], key=lambda ip: -ip[1].score)
        mine = [lead]
        for i, p in rest:
            if len(mine) >= max(cap, 1):
                break
            # Only across sections: inside one the kb states one fact per sentence, and e5 rates parallel
            # sentences (「…は品質向上につながります」「…は処理スピードの改善につながります」) as near-duplicates.
            if _redundant(kb, i, picked):
                continue
            mine.append((i, p))
        picked += mine
    stray = _stray(turn, kb, set(chosen), picked, q_tokens, settings)
    if stray is not None:
        # It takes the last place rather than growing the answer: the sentence budget is what keeps answers short.
        picked = picked[:max(settings.max_sentences - 1, 1)] + [stray]
    return [p for _, p in picked]


def _score(turn, kb, i: int, q_tokens: set[str], settings) -> Picked:
    s = kb.index.sentences[i]
    cos = float(kb.index.sentence_vectors[i] @ turn.qvec)
    ov = overlap(q_tokens, kb.sentence_tokens(i))
    bonus = settings.intent_weight if turn.intents and phrasebook.answers_intent(s.text, turn.intents) else 0.0
    return Picked(s, cos + settings.overlap_weight * ov + bonus, cos, ov)


def _redundant(kb, i: int, picked: list[tuple[int, Picked]]) -> bool:
    vectors = kb.index.sentence_vectors
    return any(float(vectors[i] @ vectors[j]) > REDUNDANT_COS for j, _ in picked)


def _stray(turn, kb, chosen: set, picked: list[tuple[int, Picked]], q_tokens: set[str], settings):
    """The best-scoring sentence of the question's language (and topic) outside the chosen sections, when it scores
    within `stray_margin` of the best sentence they offered (the margin was set on the dev and holdout suites)."""
    rows, vectors = kb.sentence_rows.get(turn.lang, (None, None))
    if rows is None or not len(rows) or not picked:
        return None
    sims = vectors @ turn.qvec
    pool = min(STRAY_POOL, len(rows))
    top = np.argpartition(-sims, pool - 1)[:pool]
    best = None
    for j in top[np.argsort(-sims[top])]:
        i = int(rows[j])
        s = kb.index.sentences[i]
        if (s.lang, s.doc_id, s.section_id) in chosen or any(i == k for k, _ in picked):
            continue
        if turn.topic and kb.doc_topic.get((s.lang, s.doc_id)) != turn.topic:
            continue
        p = _score(turn, kb, i, q_tokens, settings)
        if best is None or p.score > best[1].score:
            best = (i, p)
    floor = max(p.score for _, p in picked) + settings.stray_margin
    if best is None or best[1].score < floor or _redundant(kb, best[0], picked):
        return None
    return best


def overlap(query_tokens: set[str], tokens: set[str]) -> float:
    return len(query_tokens & tokens) / len(query_tokens) if query_tokens else 0.0
