"""Japanese-aware BM25 keyword index (bm25s over MeCab content-word tokens).

Chroma's `$contains` cannot find two-kanji words such as 委託 or 請負 inside Japanese text, and whitespace
tokenising sees a whole Japanese sentence as one token; so keyword search is ours: `text.tokenize` at
ingest and query time, BM25 scores over those tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import tokenize

# Probe terms for the health check: two-kanji words that Chroma's substring filter misses.
HEALTH_PROBES = ("委託", "請負", "準委任", "シェアードサービス")


@dataclass
class KeywordIndex:
    ids: list[str]
    _bm25: object

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> "KeywordIndex":
        return cls.from_tokens(ids, [tokenize(t) for t in texts])

    @classmethod
    def from_tokens(cls, ids: list[str], tokens: list[list[str]]) -> "KeywordIndex":
        """The index of texts already tokenized by `text.tokenize` (ingest reuses unchanged chunks' tokens)."""
        import bm25s

        corpus = [t or ["∅"] for t in tokens]  # bm25s rejects empty documents
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        return cls(list(ids), bm25)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(directory), show_progress=False)
        (directory / "ids.json").write_text(json.dumps(self.ids, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "KeywordIndex":
        import bm25s

        bm25 = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))
        return cls(ids, bm25)

    @property
    def vocab(self) -> dict:
        """token -> id of every token the kb contains (the gate asks whether a question's words are known)."""
        return self._bm25.vocab_dict

    def search(self, query: str, k: int = 10, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """(id, score) best first; only positive scores; `allowed` restricts ids (e.g. one language).

        Equal scores keep index order (what a stable sort by score gives). At least one hit is returned when any
        qualifies, even for k < 1, as the loop this replaced did.
        """
        tokens = [t for t in tokenize(query) if t in self.vocab]
        if not tokens or not self.ids:
            return []
        scores = self._bm25.get_scores(tokens)
        hits = np.flatnonzero(scores > 0)  # BM25 scores most of a large kb at 0 for any one query
        want = max(k, 1)
        # Only the best `m` hits are ordered; when `allowed` drops too many of them, widen and order again.
        m = want
        while True:
            out = []
            for i in _best(scores, hits, m):
                if allowed is None or self.ids[i] in allowed:
                    out.append((self.ids[i], float(scores[i])))
                    if len(out) >= want:
                        return out
            if m >= len(hits):
                return out
            m *= 4

    def health(self) -> dict[str, int]:
        """Hits per probe term; a healthy Japanese index finds every probe."""
        return {term: len(self.search(term, k=50)) for term in HEALTH_PROBES}


def _best(scores: np.ndarray, hits: np.ndarray, m: int) -> np.ndarray:
    """The m best of `hits` (indices into scores), best first, equal scores by index.

    A partition picks the m-th best score; everything at least that good is kept (every tie of the boundary score
    too, so which of them survive is decided by index below, not by the partition's arbitrary order)."""
    if len(hits) > m:
        vals = scores[hits]
        cut = np.partition(vals, len(vals) - m)[len(vals) - m]
        hits = hits[vals >= cut]
    order = np.lexsort((hits, -scores[hits]))
    return hits[order[:m]]
