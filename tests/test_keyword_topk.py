"""BM25 top-k by partition (keyword.py) against the full sort it replaced: same ids, same order, same ties."""

from __future__ import annotations

import random
import re

import pytest

from bpo_assistant.keyword import KeywordIndex
from bpo_assistant.settings import REPO_ROOT
from bpo_assistant.text import tokenize


def full_sort(index: KeywordIndex, query: str, k: int, allowed: set[str] | None) -> list[tuple[str, float]]:
    """The search as it was before argpartition: a stable Python sort of every id."""
    tokens = [t for t in tokenize(query) if t in index.vocab]
    if not tokens or not index.ids:
        return []
    scores = index._bm25.get_scores(tokens)
    out = []
    for i in sorted(range(len(index.ids)), key=lambda i: -scores[i]):
        if scores[i] <= 0:
            break
        if allowed is None or index.ids[i] in allowed:
            out.append((index.ids[i], float(scores[i])))
            if len(out) >= k:
                break
    return out


@pytest.fixture(scope="module")
def index() -> KeywordIndex:
    sentences = []
    for path in sorted((REPO_ROOT / "kb" / "ja").glob("*.md")):
        body = path.read_text(encoding="utf-8").split("---", 2)[2]
        sentences += [s for s in re.findall(r"[^。\n]+。", body) if not s.startswith("#")]
    rng = random.Random(11)
    texts = ["".join(rng.sample(sentences, rng.randint(1, 4))) for _ in range(300)]
    texts += texts[:40]  # identical chunks score identically: ties the order must break by index
    return KeywordIndex.build([f"c{i:04d}" for i in range(len(texts))], texts)


QUERIES = ["BPOとは何ですか？", "請負契約と準委任契約の違い", "委託", "セキュリティ 情報漏えい 対策",
           "コア業務に集中するメリット", "ベンダー選定のポイントは？"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("k", [0, 1, 5, 10, 50, 1000])
def test_partition_top_k_equals_the_full_sort(index, query, k):
    assert index.search(query, k=k) == full_sort(index, query, k, None)


@pytest.mark.parametrize("query", QUERIES)
def test_allowed_ids_are_filtered_in_the_same_order(index, query):
    rng = random.Random(query)
    half = set(rng.sample(index.ids, len(index.ids) // 2))
    few = set(rng.sample(index.ids, 7))  # most of the best hits are not allowed: the window must widen
    for allowed in (half, few, set()):
        for k in (1, 10, 1000):
            assert index.search(query, k=k, allowed=allowed) == full_sort(index, query, k, allowed)


def test_ties_are_exercised_and_broken_by_index(index):
    hits = index.search("委託", k=1000)
    assert len(hits) == len(full_sort(index, "委託", 1000, None)) > 50
    tied = [(a, b) for a, b in zip(hits, hits[1:]) if a[1] == b[1]]
    assert tied, "the corpus should hold equal scores"
    assert all(a[0] < b[0] for a, b in tied)


def test_no_hits(index):
    assert index.search("量子コンピュータ", k=10) == [] == full_sort(index, "量子コンピュータ", 10, None)
    assert index.search("", k=10) == []
