"""One frozen snapshot of everything the query path reads: index, routers, glossary, tables, kb docs, curated.

Built once per generation (`load_knowledge`); a re-ingest builds a new one and the Assistant swaps it in one
assignment, so a question in flight keeps reading the snapshot it started with. Every lookup derived from the
index is a declared field here, computed in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import compare
from .curated import CuratedAnswer, curated_base, load_curated
from .glossary import Glossary
from .index import LoadedIndex, generation_dir
from .kbfiles import load_kb_docs
from .retrieval import HybridRetriever
from .router import Router
from .settings import Settings
from .text import normalize, noun_forms, nouns, tokenize
from .types import SourceDoc
from bpo_assistant.ingest import derived as derived_tables  # computed at ingest, loaded here

SectionKey = tuple[str, str, str]  # (lang, doc_id, section_id)


@dataclass(frozen=True)
class BankRow:
    """A question the routers were trained on; also what 「もしかして」 suggests."""

    text: str
    lang: str
    section: str  # "doc#section"
    curated: str  # curated answer id without the language suffix, or "none" / ""
    kind: str  # bank | heading | curated


@dataclass(frozen=True)
class Knowledge:
    index: LoadedIndex
    glossary: Glossary
    tables: list
    retriever: HybridRetriever
    kb_docs: dict[tuple[str, str], SourceDoc]
    kb_errors: list
    curated: tuple[CuratedAnswer, ...]
    curated_errors: list
    section_router: Router | None
    curated_router: Router | None
    questions: tuple[BankRow, ...] = ()
    question_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    sections: dict[SectionKey, tuple[str, str, str]] = field(default_factory=dict)  # title, section title, text
    section_sentences: dict[SectionKey, tuple[int, ...]] = field(default_factory=dict)  # sentence rows, in order
    # (lang, doc) → its section keys: picking fills a short answer from its document without a scan of every section
    doc_sections: dict[tuple[str, str], tuple[SectionKey, ...]] = field(default_factory=dict)
    first_chunk: dict[SectionKey, str] = field(default_factory=dict)
    docs_by_noun: dict[str, frozenset[str]] = field(default_factory=dict)
    doc_topic: dict[tuple[str, str], str] = field(default_factory=dict)
    curated_by_base: dict[tuple[str, str], CuratedAnswer] = field(default_factory=dict)  # (base id, lang)
    # Words the gate accepts as in-domain: the kb's own tokens plus the nouns of the question bank, since the bank
    # records how employees word in-scope questions (線引き, タイミング) that the kb text never uses.
    vocab: frozenset[str] = frozenset()
    bank_rows: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)  # (lang, "doc#section") → rows
    question_keys: tuple[str, ...] = ()  # each question NFKC + lower case, for literal matches while typing
    # lang → (rows of index.sentences, their vectors): the stray-sentence search multiplies one contiguous matrix
    # per question instead of gathering the language's rows out of the whole table every time.
    sentence_rows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    loanwords: frozenset[str] = frozenset()  # katakana words of the vocabulary, for questions typed in hiragana
    # Filled on first use, not at load: from the generation's derived.npz when ingest wrote one, else by MeCab
    # (over every sentence at load that would put start-up in proportion to the kb).
    _sentence_tokens: dict[int, frozenset[str]] = field(default_factory=dict, compare=False, hash=False, repr=False)
    _derived: derived_tables.Derived | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def generation(self) -> str:
        return self.index.generation

    def topics(self) -> list[str]:
        return sorted(set(self.doc_topic.values()))

    def check_topic(self, topic: str | None) -> str | None:
        if not topic:
            return None
        if topic not in self.doc_topic.values():
            raise ValueError(f"unknown topic {topic!r}; known topics: {', '.join(self.topics())}")
        return topic

    def within(self, citations, topic: str | None) -> bool:
        """Curated answers and tables cite sections directly: under a topic filter every cited doc must match."""
        return topic is None or all(self.doc_topic.get((c.lang, c.doc_id)) == topic for c in citations)

    def section(self, lang: str, doc_id: str, section_id: str) -> tuple[str, str, str]:
        return self.sections.get((lang, doc_id, section_id), (doc_id, section_id, ""))

    def chunk_ids(self, citations) -> tuple[str, ...]:
        keys = ((c.lang, c.doc_id, c.section_id) for c in citations)
        return tuple(self.first_chunk[k] for k in keys if k in self.first_chunk)

    def specific_nouns(self, question: str, limit: int = 2) -> list[tuple[str, frozenset[str]]]:
        """(noun, its documents) for each noun of the question that only one or two documents use (マーケティング,
        ゼロトラスト): a subject of its own, unlike common words (注意, 業務)."""
        return [(lemma, docs) for lemma, _surface, docs in self._specific_forms(question, limit)]

    def _specific_forms(self, text: str, limit: int = 2) -> list[tuple[str, str, frozenset[str]]]:
        """(lemma, surface as written, its documents) of each noun only one or two documents use."""
        found = ((lemma, surface, self.docs_by_noun.get(lemma, frozenset())) for lemma, surface in noun_forms(text))
        return [(lemma, surface, docs) for lemma, surface, docs in found if 0 < len(docs) <= limit]

    def sentence_tokens(self, i: int) -> frozenset[str]:
        if (tokens := self._sentence_tokens.get(i)) is None:
            d = self._derived
            tokens = self._sentence_tokens[i] = (d.sentence_tokens(i) if d is not None
                                                 else frozenset(tokenize(self.index.sentences[i].text)))
        return tokens

    def names_own_subject(self, question: str) -> bool:
        return bool(self.specific_nouns(question))

    def subjects(self, text: str) -> list[str]:
        """The specific nouns of `text` (as written) that are neither an aspect (メリット, リスク: a follow-up asks its
        own) nor a glossary term (carried as a term): セキュリティ in 「BPO導入でセキュリティって大丈夫？」."""
        from .phrasebook import intents

        named = [form.lower() for t in self.glossary.find(text) for form in (t.term, t.en, *t.variants)]
        return list(dict.fromkeys(  # コンタクト of コンタクトセンター is part of a term, not a subject beside it
            surface for _lemma, surface, _docs in self._specific_forms(text)
            if len(surface) > 1 and not intents(surface) and not any(surface in form for form in named)))


def load_knowledge(settings: Settings, embedder, index: LoadedIndex) -> Knowledge:
    kb = Path(settings.kb_dir)
    glossary = Glossary.load(kb / "glossary.yaml").with_phrasings(kb / "phrasings.yaml")
    kb_docs, kb_errors = load_kb_docs(kb, cache_dir=Path(settings.data_dir))
    curated, curated_errors = load_curated(kb, kb_docs)
    gdir = generation_dir(settings, index.generation)
    section_router = _router(gdir / "router-sections", embedder.spec)
    curated_router = _router(gdir / "router-curated", embedder.spec)
    rows, vectors = _questions(gdir)
    sections, sentence_rows = _section_tables(index)
    first_chunk: dict[SectionKey, str] = {}
    for cid, ch in index.chunks.items():
        first_chunk.setdefault((ch.lang, ch.doc_id, ch.section_id), cid)
    # MeCab over every chunk: done at ingest (derived.npz); computed here only for a generation from before that.
    derived = derived_tables.load(gdir, len(index.sentences))
    loaded = derived is not None
    if derived is None:
        derived = derived_tables.compute(index.chunks.values(), index.sentences,
                                         [r.text for r in rows if r.kind == "bank"], with_tokens=False)
    return Knowledge(
        index=index, glossary=glossary, tables=compare.load_tables(kb / "comparisons.yaml"),
        retriever=HybridRetriever(index=index, embedder=embedder, glossary=glossary, settings=settings),
        kb_docs=kb_docs, kb_errors=kb_errors, curated=tuple(curated), curated_errors=curated_errors,
        section_router=section_router, curated_router=curated_router, questions=rows, question_vectors=vectors,
        sections=sections, section_sentences=sentence_rows, first_chunk=first_chunk,
        doc_sections=_doc_sections(sentence_rows),
        docs_by_noun=derived.docs_by_noun,
        doc_topic={(c.lang, c.doc_id): c.topic for c in index.chunks.values()},
        curated_by_base={(curated_base(a.id, a.lang), a.lang): a for a in curated},
        vocab=frozenset(index.keyword.vocab) | derived.bank_nouns | _glossary_nouns(glossary),
        bank_rows=_bank_rows(rows), question_keys=tuple(normalize(r.text).lower() for r in rows),
        sentence_rows=index.sentence_rows(),  # the mapped store itself, no per-language copy
        loanwords=derived.loanwords, _derived=derived if loaded else None,
    )


def _doc_sections(section_sentences) -> dict[tuple[str, str], tuple[SectionKey, ...]]:
    out: dict[tuple[str, str], list[SectionKey]] = {}
    for key in section_sentences:
        out.setdefault(key[:2], []).append(key)
    return {k: tuple(v) for k, v in out.items()}


def _bank_rows(rows: tuple[BankRow, ...]) -> dict[tuple[str, str], tuple[int, ...]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        if r.kind == "bank":
            out.setdefault((r.lang, r.section), []).append(i)
    return {k: tuple(v) for k, v in out.items()}


def _router(path: Path, spec: str) -> Router | None:
    """None for an index written before routers existed (the query path then ranks by retrieval alone)."""
    if not path.with_suffix(".json").exists():
        return None
    return Router.load(path, spec)  # RouterMismatch for another embedder: refused, like the index itself


def _questions(gdir: Path) -> tuple[tuple[BankRow, ...], np.ndarray]:
    qfile, vfile = gdir / "questions.jsonl", gdir / "questions.npy"
    if not qfile.exists() or not vfile.exists():
        return (), np.zeros((0, 1), np.float32)
    rows = tuple(BankRow(r["text"], r["lang"], r["section"], r.get("curated", ""), r["kind"])
                 for r in map(json.loads, qfile.read_text(encoding="utf-8").splitlines()) if r)
    return rows, np.load(vfile)


def _section_tables(index: LoadedIndex):
    titles = {(c.lang, c.doc_id, c.section_id): (c.title, c.section_title) for c in index.chunks.values()}
    rows: dict[SectionKey, list[int]] = {}
    for i, s in enumerate(index.sentences):
        rows.setdefault((s.lang, s.doc_id, s.section_id), []).append(i)
    ordered = {k: tuple(sorted(v, key=lambda i: index.sentences[i].ordinal)) for k, v in rows.items()}
    texts = {k: (*titles[k], " ".join(index.sentences[i].text for i in v)) for k, v in ordered.items() if k in titles}
    return texts, ordered


def _glossary_nouns(glossary: Glossary) -> frozenset[str]:
    """The nouns of every glossary name, variant and alias: an alias an owner adds (Pスペース for 駐車場) must count as
    a word the kb knows, or the gate's "question words unknown to the kb" check refuses the question it was added
    for. A few hundred short strings through MeCab: milliseconds at load."""
    return frozenset(n for t in glossary.terms for s in (t.term, t.en, *t.variants) if s for n in nouns(s))
