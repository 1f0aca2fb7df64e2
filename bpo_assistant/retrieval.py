"""Hybrid retrieval: Chroma dense arm + Japanese BM25 arm, gated and weighted, with per-document diversity.

Measured on this machine before this module existed: equal-weight fusion of the two arms was worse than
dense alone on paraphrased questions and hurt English ones. So the keyword arm runs only for Japanese
questions and with a lower weight (Settings.keyword_weight); README "Retrieval figures" has the numbers
that chose the weights. A LangChain BaseRetriever so it composes with the ecosystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .glossary import text_key
from .text import detect_lang
from .types import Chunk

# "What is X?" questions: the glossary knows which document explains X (a third, tiny retrieval arm). The cue
# must sit right at the term (「BPOとは」, "what is BPO"): 「BPOにするといいことって何？」 asks about benefits.
_CUE_AFTER = re.compile(r"^[」』\"')\s]*(とは|って何|ってなに|って(どういう|どんな)|の意味|の正式名称|の略称|は何の略|"
                        r"\s*stand\s+for|\s*mean)", re.I)
_CUE_BEFORE = re.compile(r"(what\s+is|what's|what\s+are|what\s+does|meaning\s+of|define|definition\s+of)"
                         r"(\s+(an?|the))?[\s「『\"']*$", re.I)


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # fused score used for ranking
    dense: float  # cosine similarity from the dense arm (0.0 when the arm did not return the chunk)
    keyword: float  # BM25 score (0.0 when absent)
    defines: bool = False  # the glossary's defining section for the term a "what is X?" question names


class HybridRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any  # bpo_assistant.index.LoadedIndex
    embedder: Any
    glossary: Any
    settings: Any
    use_dense: bool = True
    use_keyword: bool | None = None  # None: for the languages in Settings.keyword_langs (the measured gate)

    def _ids_by_lang(self) -> dict[str, set[str]]:
        cache = getattr(self.index, "_ids_by_lang", None)
        if cache is None:
            cache = {}
            for cid, chunk in self.index.chunks.items():
                cache.setdefault(chunk.lang, set()).add(cid)
            self.index._ids_by_lang = cache
        return cache

    def dense(self, qvec: np.ndarray, lang: str, k: int, topic: str | None = None) -> list[tuple[str, float]]:
        # One collection per language, so only a topic is a filter; records of other generations sharing the
        # collection are dropped inside (index.DenseIndex).
        return self.index.dense.search(qvec, k, lang=lang, topic=topic)

    def keyword(self, query: str, lang: str, k: int) -> list[tuple[str, float]]:
        expanded = f"{query} {self.glossary.expand(query, lang)}"
        return self.index.keyword.search(expanded, k=k, allowed=self._ids_by_lang().get(lang, set()))

    def definition(self, query: str, lang: str) -> list[tuple[str, float]]:
        """For a definitional question about one glossary term: the first chunk of the section the glossary
        names for it, so 「請負契約とは？」 lands on the definition rather than on a look-alike section."""
        terms = self.glossary.find(query)
        if len(terms) != 1:
            return []
        term = terms[0]
        key = text_key(query)
        if not any(_CUE_AFTER.search(key[end:]) or _CUE_BEFORE.search(key[:start])
                   for start, end, _ in self.glossary.spans(query)):
            return []
        for cid in self._ids_by_lang().get(lang, ()):
            chunk = self.index.chunks[cid]
            if (chunk.doc_id, chunk.section_id, chunk.ordinal) == (term.doc, term.section, 0):
                return [(cid, 1.0)]
        return []

    def search(self, query: str, lang: str | None = None, k: int | None = None, topic: str | None = None,
               qvec: np.ndarray | None = None) -> list[Hit]:
        s = self.settings
        lang = lang or detect_lang(query)
        k = k or s.top_k
        dense_hits: list[tuple[str, float]] = []
        if self.use_dense:
            if qvec is None:
                qvec = self.embedder.queries([query])[0]
            dense_hits = self.dense(qvec, lang, s.dense_k, topic)
        use_kw = (lang in s.keyword_langs.split(",")) if self.use_keyword is None else self.use_keyword
        kw_hits = self.keyword(query, lang, s.keyword_k) if use_kw else []
        fused = fuse(dense_hits, kw_hits, s)
        defining = {cid for cid, _ in self.definition(query, lang)} if s.definition_weight else set()
        for cid in defining:
            fused[cid] = fused.get(cid, min(fused.values(), default=0.0)) + s.definition_weight
        dense_score, kw_score = dict(dense_hits), dict(kw_hits)
        ranked = sorted(fused, key=lambda c: -fused[c])
        hits = [
            Hit(self.index.chunks[c], fused[c], dense_score.get(c, 0.0), kw_score.get(c, 0.0), c in defining)
            for c in ranked
            if c in self.index.chunks and (topic is None or self.index.chunks[c].topic == topic)
        ]
        return diversify(hits, k, s.mmr_per_doc)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(
                page_content=h.chunk.text,
                id=h.chunk.id,
                metadata={"doc_id": h.chunk.doc_id, "section_id": h.chunk.section_id, "lang": h.chunk.lang,
                          "title": h.chunk.title, "section_title": h.chunk.section_title, "score": h.score},
            )
            for h in self.search(query)
        ]


def fuse(dense_hits: list[tuple[str, float]], kw_hits: list[tuple[str, float]], s) -> dict[str, float]:
    """Weighted score fusion: dense cosine plus keyword_weight × BM25 normalised to the best keyword hit.

    Chosen over reciprocal-rank fusion by benchmarks/retrieval.py: RRF with k=60 flattens the dense arm's
    order (rank 1 and rank 2 differ by 0.0003), so even a small keyword weight reshuffled the top documents
    and lowered recall@1 from 0.926 to 0.895 on Japanese dev questions. Scores keep the dense margins.
    Chunks that only the keyword arm found start from the lowest dense score seen, not from zero.
    """
    fused = {cid: score for cid, score in dense_hits}
    floor = min(fused.values(), default=0.0)
    top_kw = max((score for _, score in kw_hits), default=0.0)
    for cid, score in kw_hits:
        fused[cid] = fused.get(cid, floor) + s.keyword_weight * score / top_kw
    return fused


def diversify(hits: list[Hit], k: int, per_doc: int) -> list[Hit]:
    """Keep rank order but let no document take more than `per_doc` of the first k slots (MMR by document)."""
    chosen, overflow, counts = [], [], {}
    for h in hits:
        if counts.get(h.chunk.doc_id, 0) < per_doc:
            chosen.append(h)
            counts[h.chunk.doc_id] = counts.get(h.chunk.doc_id, 0) + 1
        else:
            overflow.append(h)
        if len(chosen) >= k:
            break
    return (chosen + overflow)[:k]
