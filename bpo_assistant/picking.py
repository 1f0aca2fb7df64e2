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
PREMISE_STRAYS = 1
SPECIFIC_DOCS = 6  # of the 12 documents per language: a word half of them use or fewer
DOMAIN_TERMS = frozenset({"BPO", "アウトソーシング"})  # glossary terms no sentence is "about another subject" for


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
    spare = 0  # budget a short section left unused goes to the next one (a 2-sentence overview, then the detail)
    for key, cap in zip(chosen, budget):
        cap += spare
        scored = [(i, _score(turn, kb, i, q_tokens, settings)) for i in kb.section_sentences.get(key, ())]
        if not scored:
            spare = cap
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
        spare = max(cap - len(mine), 0)
        picked += mine
    # Only into room the answer has left (displacing a sentence the question's sections chose cost more than it
    # won), and before the fill from the rest of the document, which the character limit drops first.
    if len(picked) < settings.max_sentences and (detail := _named_detail(turn, kb, chosen, picked, q_tokens,
                                                                         settings)) is not None:
        picked.append(detail)
    picked += _fill(turn, kb, chosen, picked, q_tokens, settings)
    strays = _premise_strays(turn, kb, set(chosen), picked, q_tokens, settings) if "premise" in turn.intents else []
    stray = _stray(turn, kb, set(chosen), picked + strays, q_tokens, settings)
    strays += [stray] if stray is not None else []
    if strays:
        # They take the last places rather than growing the answer: the sentence budget keeps answers short.
        picked = picked[:max(settings.max_sentences - len(strays), 1)] + strays
    # A belief question hears the correction first (「任せきりにせず…」), then the sections' detail.
    if "premise" in turn.intents:
        first = [ip for ip in picked if phrasebook.answers_intent(ip[1].sentence.text, ("premise",))]
        picked = first + [ip for ip in picked if ip not in first]
    return [p for _, p in picked]


def _fill(turn, kb, chosen, picked, q_tokens: set[str], settings) -> list[tuple[int, Picked]]:
    """「BPOとDXの関係」: the chosen sections are short (3 + 1 sentences) while the rest of the top section's document
    says how each helps the other. An answer under `min_sentences` takes the document's other sentences that score
    best, until it reaches it: the document was written about the question's subject, the rest of the kb was not."""
    if not chosen or len(picked) >= settings.min_sentences:
        return []
    lang, doc, _ = chosen[0]
    taken = {i for i, _ in picked}
    rows = [i for key in kb.doc_sections.get((lang, doc), ()) if key not in chosen
            for i in kb.section_sentences[key] if i not in taken]
    out: list[tuple[int, Picked]] = []
    for i, p in sorted(((i, _score(turn, kb, i, q_tokens, settings)) for i in rows), key=lambda ip: -ip[1].score):
        if len(picked) + len(out) >= settings.min_sentences:
            break
        if not _redundant(kb, i, picked + out):
            out.append((i, p))
    return out


def _named_detail(turn, kb, chosen, picked, q_tokens: set[str], settings) -> tuple[int, Picked] | None:
    """「経理部門のどんな業務がBPOの対象？」 routes to the overview of target operations, whose sentences never say 経理,
    while the same document's back-office section lists 経理's 月次決算 and 帳簿. A word of the question that no
    quoted sentence holds and that only some documents use (SPECIFIC_DOCS: 業務 and BPO are in every one) names a
    detail: the best sentence of the top section's document that holds it joins the answer."""
    docs = {chosen[0][:2]} if chosen else set()
    # Said by the top document: another document's sentence listing 経理 in passing does not say what 経理 hands over.
    said = set().union(*(kb.sentence_tokens(i) for i, p in picked if (p.sentence.lang, p.sentence.doc_id) in docs))
    wanted = {t for t in q_tokens - said if len(t) > 1 and 0 < len(kb.docs_by_noun.get(t, ())) <= SPECIFIC_DOCS}
    if not wanted:
        return None
    # The earliest such word first: a Japanese compound puts its specific part first (経理部門: 経理, not 部門).
    first = min(wanted, key=lambda t: (p if (p := turn.query.lower().find(t)) >= 0 else len(turn.query), t))
    taken = {i for i, _ in picked}
    rows = [i for d in docs for key in kb.doc_sections.get(d, ()) for i in kb.section_sentences.get(key, ())
            if i not in taken and first in kb.sentence_tokens(i)]
    scored = sorted(((i, _score(turn, kb, i, q_tokens, settings)) for i in rows), key=lambda ip: -ip[1].score)
    return next(((i, p) for i, p in scored if not _redundant(kb, i, picked)), None)


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
    if not picked:
        return None
    pool = _pool(turn, kb, chosen, picked, q_tokens, settings)
    best = pool[0] if pool else None
    floor = max(p.score for _, p in picked) + settings.stray_margin
    if best is None or best[1].score < floor or _redundant(kb, best[0], picked):
        return None
    return best


def _pool(turn, kb, chosen: set, picked, q_tokens: set[str], settings, size: int = STRAY_POOL
          ) -> list[tuple[int, Picked]]:
    """The language's STRAY_POOL nearest sentences outside the chosen sections and picked sentences (and within the
    question's topic), scored like any candidate, best first."""
    rows, vectors = kb.sentence_rows.get(turn.lang, (None, None))
    if rows is None or not len(rows):
        return []
    sims = vectors @ turn.qvec
    size = min(size, len(rows))
    top = np.argpartition(-sims, size - 1)[:size]
    taken = {k for k, _ in picked}
    out = []
    for j in top:
        i = int(rows[j])
        s = kb.index.sentences[i]
        if (s.lang, s.doc_id, s.section_id) in chosen or i in taken:
            continue
        if turn.topic and kb.doc_topic.get((s.lang, s.doc_id)) != turn.topic:
            continue
        out.append((i, _score(turn, kb, i, q_tokens, settings)))
    return sorted(out, key=lambda ip: -ip[1].score)


def _premise_strays(turn, kb, chosen: set, picked, q_tokens: set[str], settings) -> list[tuple[int, Picked]]:
    """「任せっきりで大丈夫ですよね？」: the kb corrects such beliefs in sentences like 「任せきりにせず、継続的に管理と
    見直しを行います」, which sit in a summary the question's words (業者, 任せ) do not route to. Up to
    PREMISE_STRAYS of the language's nearest sentences that hold a correcting cue join, within premise_margin."""
    if not picked:
        return []
    floor = max(p.score for _, p in picked) + settings.premise_margin
    asked = {t.term for t in kb.glossary.find(turn.query)}
    out: list[tuple[int, Picked]] = []
    # A wider pool: the correcting sentence shares few words with the belief (丸投げ vs 任せきり).
    for i, p in _pool(turn, kb, chosen, picked, q_tokens, settings, 2 * STRAY_POOL):
        if len(out) >= PREMISE_STRAYS or p.score < floor:
            break
        if (phrasebook.answers_intent(p.sentence.text, ("premise",)) and not _redundant(kb, i, picked + out)
                and not _other_subject(kb, p.sentence.text, asked)):
            out.append((i, p))
    return out


def _other_subject(kb, sentence: str, asked: set[str]) -> bool:
    """A correcting sentence about a concept the question never names (「BPRは…必ずしも伴いません」 for a question on
    シェアードサービス) corrects another belief. BPO and outsourcing (外部委託) are every sentence's subject."""
    return any(t.term not in asked and t.term not in DOMAIN_TERMS for t in kb.glossary.find(sentence))


def overlap(query_tokens: set[str], tokens: set[str]) -> float:
    return len(query_tokens & tokens) / len(query_tokens) if query_tokens else 0.0
