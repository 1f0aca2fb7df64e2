"""The facade: `Assistant.ask` shows the whole query path in a dozen lines; each stage lives in its module."""

from __future__ import annotations

import threading
import time
from typing import Mapping, Sequence

from . import compare, gate, guard
from .compose import compose, pick_sentences
from .curated import STALE_NOTICE, CuratedMatcher, cited_sentences, load_curated
from .followup import standalone_query
from .glossary import Glossary
from .index import LoadedIndex, current_generation, load_index
from .kbfiles import load_kb_docs
from .retrieval import HybridRetriever
from .settings import Settings
from .text import detect_lang, nouns, split_sentences
from .types import Answer, AnswerSentence, SourceDoc

SPECIFIC_NOUN_DOCS = 2
FALLBACK_NOTICE = "No English source covers this; the answer quotes our Japanese guidance."


class Assistant:
    def __init__(self, settings: Settings, embedder, index: LoadedIndex) -> None:
        self.settings = settings
        self.embedder = embedder
        self.llm = None
        if settings.llm:
            from .llm import make_llm

            self.llm = make_llm(settings)
        self._lock = threading.Lock()
        self._load(index)

    def _load(self, index: LoadedIndex) -> None:
        """Everything derived from kb/ and the index; rebuilt together when a re-ingest lands."""
        kb = self.settings.kb_dir
        self.index = index
        self.glossary = Glossary.load(kb / "glossary.yaml").with_phrasings(kb / "phrasings.yaml")
        self.tables = compare.load_tables(kb / "comparisons.yaml")
        self.retriever = HybridRetriever(index=index, embedder=self.embedder, glossary=self.glossary,
                                         settings=self.settings)
        self._sections = _section_table(index)
        self._first_chunk: dict[tuple[str, str, str], str] = {}
        for cid, ch in index.chunks.items():
            self._first_chunk.setdefault((ch.lang, ch.doc_id, ch.section_id), cid)
        self._docs_by_noun = _docs_by_noun(index)
        self._doc_topic = {(c.lang, c.doc_id): c.topic for c in index.chunks.values()}
        self.kb_docs, self.kb_errors = load_kb_docs(kb)
        self.curated, self.curated_errors = load_curated(kb, self.kb_docs)
        self.matcher = CuratedMatcher(self.curated, self.embedder, self.settings.curated_threshold)

    def refresh(self) -> bool:
        """Follow a re-ingest: ingest swaps CURRENT and drops the old collection, so a long-running chat must
        move to the new generation. Cheap enough to call before every question (one small file read)."""
        if current_generation(self.settings) in (None, self.index.generation):
            return False
        with self._lock:
            if current_generation(self.settings) != self.index.generation:
                self._load(load_index(self.settings, self.embedder))
        return True

    @classmethod
    def from_settings(cls, settings: Settings, embedder=None) -> "Assistant":
        from .embeddings import make_embedder

        embedder = embedder or make_embedder(settings.embedder)
        return cls(settings, embedder, load_index(settings, embedder))

    # ---- the query path -------------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[Mapping[str, str]] = (), topic: str | None = None) -> Answer:
        """`topic` (a kb front-matter topic such as "contracts") limits every source to that topic's documents."""
        t = _Timer()
        self.refresh()
        topic = self._check_topic(topic)
        clean = guard.clean_question(question, self.settings.max_question_chars)
        lang = detect_lang(guard.strip_markup(clean.text)) if not clean.empty else _history_lang(history)
        notice = guard.TRUNCATED_NOTICE[lang].format(n=self.settings.max_question_chars) if clean.truncated else ""
        if clean.empty:
            return Answer(guard.EMPTY_PROMPT_EN if lang == "en" else guard.EMPTY_PROMPT_JA, refused=True,
                          lang=lang, kind="prompt", timings=t.done("guard"))
        asked = guard.focus(guard.strip_markup(clean.text))
        asked = _drop_injection(asked) if clean.override else asked
        query = standalone_query(asked, history, self.glossary, self._names_own_subject) if asked else ""
        qvec = self.embedder.queries([self.glossary.canonicalize(query, lang) or clean.text])[0]
        t.lap("embed")
        if clean.other_users or not asked:
            return self._refuse(qvec, lang, query, notice, t)
        hits = self.retriever.search(query, lang=lang, qvec=qvec, topic=topic)
        t.lap("retrieve")
        retrieved = tuple(h.chunk.id for h in hits)
        n_terms = len(self.glossary.find(query))
        table = compare.pick_columns(query, self.tables, self.glossary) if compare.is_comparison(query, n_terms) else None
        text, citations = compare.render(*table, lang, self.section, self.settings.max_answer_chars) if table else ("", ())
        if table and self._within(citations, topic):
            return Answer(text, (), citations, standalone_query=query, lang=lang, kind="comparison", notice=notice,
                          retrieved=retrieved + self._chunk_ids(citations), timings=t.done("compose"))
        match = self.matcher.match(qvec, lang)
        if match and self._within(match[0].citations, topic) and not gate.asks_for_missing_type(query, match[0].answer):
            return self._curated_answer(match[0], query, notice, retrieved, t)
        picked = pick_sentences(self.index, hits, qvec, query, self.settings.max_sentences)
        top_dense = max((h.dense for h in hits), default=0.0)
        verdict = gate.check(query, top_dense, [p.sentence.text for p in picked], self.index.keyword.vocab, self.settings,
                             asked=asked)
        if verdict.ok and topic and (elsewhere := self._subject_outside(query, lang, topic)):
            return self._refuse(qvec, lang, query, notice, t, f"{elsewhere} is covered outside topic {topic}")
        if not verdict.ok and lang == "en":
            return self._fallback_ja(query, qvec, notice, t, topic) or self._refuse(qvec, lang, query, notice, t, verdict.reason)
        if not verdict.ok:
            return self._refuse(qvec, lang, query, notice, t, verdict.reason)
        return self._compose(picked, hits, query, qvec, lang, notice, retrieved, t)

    # ---- stages ---------------------------------------------------------------------------------
    def _compose(self, picked, hits, query, qvec, lang, notice, retrieved, t, lead=None) -> Answer:
        text, sentences, citations = compose(self.index, picked, lang, self.settings.max_answer_chars, lead)
        kind = "extractive"
        if self.llm is not None:
            from .llm import generate

            generated = generate(self.llm, query, hits, lang)
            if generated is not None:
                text, sentences, citations = generated
                kind = "llm"
        return Answer(text, sentences, citations, standalone_query=query, lang=lang, kind=kind, notice=notice,
                      retrieved=retrieved, timings=t.done("compose"))

    def _fallback_ja(self, query, qvec, notice, t, topic=None) -> Answer | None:
        """English question, weak English evidence: answer from the Japanese guidance, saying so. The glossary
        bridges the languages: without a known term in the question there is nothing to fall back on."""
        terms = self.glossary.find(query)
        if not terms:
            return None
        qvec = self.embedder.queries([self.glossary.canonicalize(query, "ja")])[0]
        hits = self.retriever.search(query, lang="ja", qvec=qvec, topic=topic)
        picked = pick_sentences(self.index, hits, qvec, " ".join(t.term for t in terms), self.settings.max_sentences)
        evidence = [p.sentence.text for p in picked]
        top = max((h.dense for h in hits), default=0.0)
        bridged = " ".join(t.term for t in terms)  # the question's known words, in the kb's language
        if not gate.check(bridged, top, evidence, self.index.keyword.vocab, self.settings).ok:
            return None
        if gate.asks_for_missing_type(query, " ".join(evidence)):
            return None
        notice = " ".join(x for x in (notice, FALLBACK_NOTICE) if x)
        return self._compose(picked, hits, query, qvec, "en", notice, tuple(h.chunk.id for h in hits), t,
                             lead=FALLBACK_NOTICE)

    def _curated_answer(self, answer, query, notice, retrieved, t) -> Answer:
        stale_notice = STALE_NOTICE[answer.lang] if answer.stale else ""
        sentences = tuple(AnswerSentence(body, marks) for body, marks in cited_sentences(answer.answer))
        text = answer.answer + "\n\n" + ("出典:" if answer.lang == "ja" else "Sources:") + "\n" + "\n".join(
            f"- {c.label}" for c in answer.citations)
        return Answer(text, sentences, answer.citations, curated=True, standalone_query=query, lang=answer.lang,
                      kind="curated", notice=" ".join(x for x in (notice, stale_notice) if x), stale=answer.stale,
                      retrieved=retrieved + self._chunk_ids(answer.citations), timings=t.done("curated"))

    def _refuse(self, qvec, lang, query, notice, t, reason: str = "") -> Answer:
        nearest = [a.questions[0] for a, _ in self.matcher.nearest(qvec, lang, 3)]
        if len(nearest) < 3:  # no curated answers nearby: offer the nearest documents' titles instead
            titles = [self.index.chunks[cid].title for cid, _ in self.retriever.dense(qvec, lang, 8)]
            nearest += [t for t in dict.fromkeys(titles) if t not in nearest][: 3 - len(nearest)]
        lines = [guard.refusal_text(lang)]
        if nearest:
            lines += ["", guard.NEAREST_LEAD[lang]] + [f"- {q}" for q in nearest]
        return Answer("\n".join(lines), refused=True, standalone_query=query, lang=lang, kind="refusal",
                      notice=notice, suggestions=tuple(nearest), timings=t.done("refuse"))

    def topics(self) -> list[str]:
        return sorted(set(self._doc_topic.values()))

    def _check_topic(self, topic: str | None) -> str | None:
        if not topic:
            return None
        if topic not in self._doc_topic.values():
            raise ValueError(f"unknown topic {topic!r}; known topics: {', '.join(self.topics())}")
        return topic

    def _within(self, citations, topic: str | None) -> bool:
        """Curated answers and comparison tables cite sections directly: under a topic filter they qualify only
        when every cited document belongs to that topic."""
        return topic is None or all(self._doc_topic.get((c.lang, c.doc_id)) == topic for c in citations)

    def _subject_outside(self, question: str, lang: str, topic: str) -> str:
        """A subject the question names (a noun only one or two documents use) that no document of `topic`
        covers: answering from the topic's other sentences would be off the point, so the filter makes it a
        refusal. Returns that noun, or ""."""
        for noun in nouns(question):
            docs = self._docs_by_noun.get(noun, ())
            if 0 < len(docs) <= SPECIFIC_NOUN_DOCS and all(self._doc_topic.get((lang, d)) != topic for d in docs):
                return noun
        return ""

    def _names_own_subject(self, question: str) -> bool:
        """A noun that only one or two documents use (マーケティング, ゼロトラスト) is a subject of its own;
        common ones (注意, 業務) are not."""
        return any(0 < len(self._docs_by_noun.get(n, ())) <= SPECIFIC_NOUN_DOCS for n in nouns(question))

    # ---- lookups used by composers and the UI ---------------------------------------------------
    def section(self, lang: str, doc_id: str, section_id: str) -> tuple[str, str, str]:
        """(document title, section title, section text) from the index."""
        return self._sections.get((lang, doc_id, section_id), (doc_id, section_id, ""))

    def section_text(self, lang: str, doc_id: str, section_id: str) -> str:
        return self.section(lang, doc_id, section_id)[2]

    def _chunk_ids(self, citations) -> tuple[str, ...]:
        """A chunk of each cited section (curated answers and tables cite sections directly, not via retrieval)."""
        keys = ((c.lang, c.doc_id, c.section_id) for c in citations)
        return tuple(self._first_chunk[k] for k in keys if k in self._first_chunk)

    def curated_answers(self):
        return list(self.curated)

    def comparison_markdown(self, lang: str) -> str:
        table = next((t for t in self.tables if t.id == "concepts"), None)
        if table is None:
            return ""
        cols = [c for c in table.columns if c["id"] != "outsourcing"] or table.columns
        return compare.render(table, cols, lang, self.section)[0]

    def documents(self, lang: str) -> list[SourceDoc]:
        return sorted((d for (lg, _), d in self.kb_docs.items() if lg == lang), key=lambda d: d.id)


def _docs_by_noun(index: LoadedIndex) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for chunk in index.chunks.values():
        for noun in nouns(chunk.text):
            out.setdefault(noun, set()).add(chunk.doc_id)
    return out


def _section_table(index: LoadedIndex) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    titles = {(c.lang, c.doc_id, c.section_id): (c.title, c.section_title) for c in index.chunks.values()}
    texts: dict[tuple[str, str, str], list] = {}
    for s in index.sentences:
        texts.setdefault((s.lang, s.doc_id, s.section_id), []).append((s.ordinal, s.text))
    return {k: (*titles[k], " ".join(t for _, t in sorted(v))) for k, v in texts.items() if k in titles}


def _drop_injection(text: str) -> str:
    """Keep the sentences that are not instruction-override attempts (a real question may ride along)."""
    kept = [s for s in split_sentences(text) if not guard.clean_question(s, 10**6).override]
    return " ".join(kept).strip()


def _history_lang(history) -> str:
    for turn in reversed(list(history)):
        if turn.get("role") == "user" and turn.get("content"):
            return detect_lang(str(turn["content"]))
    return "ja"


class _Timer:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = (now - self.last) * 1000
        self.last = now

    def done(self, name: str) -> dict:
        self.lap(name)
        return dict(self.timings)
