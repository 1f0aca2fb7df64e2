"""The grounded stage: rank sections (retrieval fused with the router), gate, quote the sentences that answer.

Sections, not chunks, are the unit: the kb keeps one point per section, and the router was trained on
expected questions per section. A section's score is its best retrieved chunk (dense + BM25 + definition arm)
plus ROUTER_WEIGHT × the router's calibrated probability, so a colloquial question the passages do not resemble
still reaches the section whose bank it resembles. The answer quotes up to three sections (the second when it
scores close to the first, a third for a compound question), each led by its first sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import gate, phrasebook
from .compose import compose
from .knowledge import Knowledge
from .picking import pick
from .refusal import refuse
from .turn import Turn
from .types import Answer

LOW_CONFIDENCE = 0.30  # router top probability below which an answer offers 「もしかして」 questions


@dataclass(frozen=True)
class RankedSection:
    key: tuple[str, str, str]  # (lang, doc_id, section_id)
    score: float
    retrieval: float
    routed: float


def rank_sections(turn: Turn, kb: Knowledge, hits, settings, lang: str) -> list[RankedSection]:
    retrieval: dict[tuple[str, str, str], float] = {}
    for h in hits:
        key = (h.chunk.lang, h.chunk.doc_id, h.chunk.section_id)
        retrieval[key] = max(retrieval.get(key, -1.0), h.score)
    floor = min(retrieval.values(), default=0.0)
    routed = dict(turn.routed)
    keys = set(retrieval) | {(lang, *label.split("#", 1)) for label in routed if label.count("#") == 1}
    prior_docs = {p.split("#", 1)[0] for p in turn.prior_sections} if phrasebook.NARROW.search(turn.asked) else set()
    out = []
    for key in keys:
        if key not in kb.sections or (turn.topic and kb.doc_topic.get(key[:2]) != turn.topic):
            continue
        p = routed.get(f"{key[1]}#{key[2]}", 0.0)
        r = retrieval.get(key, floor)
        bonus = settings.prior_weight if key[1] in prior_docs else 0.0
        out.append(RankedSection(key, r + settings.router_weight * p + bonus, r, p))
    return sorted(out, key=lambda s: -s.score)


def choose(turn: Turn, ranked: list[RankedSection], settings, sections=()) -> list[RankedSection]:
    """The top section, plus the next ones that score close to it: within the margin, or within three margins
    for a sibling section of the same document (siblings complement each other: a definition and its
    difference from BPO), or for a compound question."""
    if not ranked:
        return []
    n = 3 if turn.compound else 2
    top, margin = ranked[0], settings.second_section_margin
    out = [top]
    by_key = {s.key: s for s in ranked}
    for label in turn.part_routes:  # each half of a compound question brings its own top section
        key = (top.key[0], *label.split("#", 1))
        # A half's section the whole question neither retrieved nor routed to is still the kb's own section.
        part = by_key.get(key) or (RankedSection(key, 0.0, 0.0, 0.0) if key in sections else None)
        if part is not None and part not in out and len(out) < n:
            out.append(part)
    for s in ranked[1:4]:
        if s in out:
            continue
        sibling = s.key[1] == top.key[1]
        close = s.score >= top.score - (3 * margin if sibling or turn.compound else margin)
        # 「ITOとBPRってそれぞれ何？」: the router splitting its belief between two sections is the bank saying the
        # question asks both, even when the passages resemble one of them much more.
        shared = turn.compound and s.routed >= settings.compound_router_share
        if len(out) < n and (close or shared):
            out.append(s)
    return out


def evidence(turn: Turn, kb: Knowledge, settings, lang: str):
    """Retrieve in `lang`, rank sections, choose and pick their sentences: (hits, ranked, picked)."""
    # Through the LangChain surface (invoke, not .search), so a callback or tracer the caller configured sees every
    # production query and its documents; ~1.5 ms per question. A language the index has no chunks in is no
    # hits here (a refusal downstream), where an outside caller of invoke gets an error naming the languages.
    retriever = kb.retriever
    hits = retriever.hits(retriever.invoke(turn.query, lang=lang, qvec=turn.qvec, topic=turn.topic)) \
        if lang in retriever.langs() else []
    ranked = rank_sections(turn, kb, hits, settings, lang)
    return hits, ranked, pick(turn, kb, [s.key for s in choose(turn, ranked, settings, kb.sections)], settings)


def answer(turn: Turn, kb: Knowledge, settings, embedder, llm=None) -> Answer:
    """The last stage: always returns an answer or a refusal that says why."""
    hits, ranked, picked = evidence(turn, kb, settings, turn.lang)
    turn.timer.lap("retrieve")
    top_dense = max((h.dense for h in hits), default=0.0)
    verdict = gate.check(turn.query, top_dense, [p.sentence.text for p in picked], kb.vocab, settings,
                         asked=turn.asked)
    if verdict.ok and turn.topic and (elsewhere := subject_outside(turn, kb)):
        return refuse(turn, kb, f"{elsewhere} is covered outside topic {turn.topic}")
    if not verdict.ok and turn.lang == "en":
        return fallback_ja(turn, kb, settings, embedder, llm) or refuse(turn, kb, verdict.reason)
    if not verdict.ok:
        return refuse(turn, kb, verdict.reason)
    return _compose(turn, kb, settings, picked, hits, _retrieved(kb, ranked, hits, picked), llm, lead=None,
                    reason=f"sections by retrieval + router (top {ranked[0].key[1]}#{ranked[0].key[2]}, "
                           f"p={turn.confidence:.2f}); gate: {verdict.reason}")


def fallback_ja(turn: Turn, kb: Knowledge, settings, embedder, llm=None) -> Answer | None:
    """English question, weak English evidence: answer from the Japanese guidance, saying so. The glossary
    bridges the languages: without a known term in the question there is nothing to fall back on."""
    terms = kb.glossary.find(turn.query)
    if not terms:
        return None
    ja_turn = replace(turn, qvec=embedder.queries([kb.glossary.canonicalize(turn.query, "ja")])[0])
    hits, ranked, picked = evidence(ja_turn, kb, settings, "ja")
    quoted = [p.sentence.text for p in picked]
    bridged = " ".join(t.term for t in terms)  # the question's known words, in the kb's language
    top = max((h.dense for h in hits), default=0.0)
    if not gate.check(bridged, top, quoted, kb.vocab, settings, asked=turn.asked).ok:
        return None
    if gate.asks_for_missing_type(turn.query, " ".join(quoted)):
        return None
    notice = " ".join(x for x in (turn.notice, phrasebook.FALLBACK_NOTICE) if x)
    return _compose(replace(ja_turn, notice=notice), kb, settings, picked, hits, _retrieved(kb, ranked, hits, picked), llm,
                    lead=phrasebook.FALLBACK_NOTICE, reason="weak English evidence: Japanese sources via the glossary",
                    lang="en")


def _compose(turn, kb, settings, picked, hits, retrieved, llm, lead, reason, lang=None) -> Answer:
    lang = lang or turn.lang
    text, sentences, citations = compose(kb.index, picked, lang, settings.max_answer_chars, lead)
    kind = "extractive"
    if llm is not None:
        from .llm import generate

        generated = generate(llm, turn.query, hits, lang)
        if generated is not None:
            text, sentences, citations = generated
            kind = "llm"
    suggestions = did_you_mean(turn, kb) if turn.confidence < LOW_CONFIDENCE else ()
    return Answer(text, sentences, citations, standalone_query=turn.query, lang=lang, kind=kind, notice=turn.notice,
                  retrieved=retrieved, reason=reason, confidence=turn.confidence, suggestions=suggestions,
                  timings=turn.timer.done("compose"))


def did_you_mean(turn: Turn, kb: Knowledge, n: int = 3) -> tuple[str, ...]:
    """For each of the top routed sections, its bank question nearest to what was asked."""
    out = []
    for label, _ in turn.routed[:n]:
        rows = kb.bank_rows.get((turn.lang, label), ())
        if rows:
            out.append(kb.questions[max(rows, key=lambda i: turn.question_sims[i])].text)
    return tuple(dict.fromkeys(q for q in out if q != turn.asked))


def subject_outside(turn: Turn, kb: Knowledge, limit: int = 2) -> str:
    """A subject the question names (a noun only one or two documents use) that no document of the topic covers."""
    for noun, docs in kb.specific_nouns(turn.query, limit):
        if all(kb.doc_topic.get((turn.lang, d)) != turn.topic for d in docs):
            return noun
    return ""


def _retrieved(kb: Knowledge, ranked: list[RankedSection], hits, picked) -> tuple[str, ...]:
    """What the composer saw, best first: the ranked sections (their first chunks), the raw hits, then the chunk
    of a sentence found by the sentence search (a stray)."""
    head = tuple(kb.first_chunk[s.key] for s in ranked[:6] if s.key in kb.first_chunk)
    tail = tuple(p.sentence.chunk_id for p in picked)
    return tuple(dict.fromkeys(head + tuple(h.chunk.id for h in hits) + tail))

