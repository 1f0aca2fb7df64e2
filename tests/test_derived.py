"""The MeCab-derived lookups (noun → documents, bank nouns, loanwords, sentence tokens) are computed at ingest
into the generation's derived.npz; the query process loads them, and computes the very same values for a
generation written before that stage existed."""

from __future__ import annotations

import dataclasses

import numpy as np

from bpo_assistant.embeddings import make_embedder
from bpo_assistant.index import generation_dir, load_index
from bpo_assistant.knowledge import Knowledge, load_knowledge
from conftest import write_doc
from ingest import derived
from ingest.pipeline import run_ingest

# Built per load or not derived from the kb text: compared elsewhere or not comparable by value.
NOT_DERIVED = {"index", "retriever", "section_router", "curated_router", "glossary", "_sentence_tokens", "_derived"}


def _kb(kb) -> None:
    write_doc(kb, "ja", "bpo-overview", {
        "definition": "BPOは業務プロセスを外部の専門業者に任せる手法です。セキュリティ対策も委託先と確認します。",
        "purpose": "BPOの目的はコア業務への集中です。マーケティングの担当者は戦略に専念できます。"})
    write_doc(kb, "ja", "zero-trust", {"basics": "ゼロトラストは社内ネットワークも信頼しない考え方です。"},
              topic="operations")
    write_doc(kb, "en", "bpo-overview", {"definition": "BPO hands business processes to an outside provider."})
    bank = kb / "questions" / "ja" / "bpo-overview.yaml"
    bank.parent.mkdir(parents=True, exist_ok=True)
    bank.write_text("doc: bpo-overview\nlang: ja\nsections:\n  definition:\n    - 線引きのタイミングは？\n"
                    "  purpose:\n    - BPOの目的は？\n", encoding="utf-8")


def _both(settings) -> tuple[Knowledge, Knowledge]:
    embedder = make_embedder(settings.embedder, settings)
    index = load_index(settings, embedder)
    path = generation_dir(settings, index.generation) / derived.FILE
    assert path.exists()
    loaded = load_knowledge(settings, embedder, index)
    path.rename(path.with_suffix(".off"))  # as a generation written before the stage existed
    try:
        computed = load_knowledge(settings, embedder, index)
    finally:
        path.with_suffix(".off").rename(path)
    assert loaded._derived is not None and computed._derived is None
    return loaded, computed


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_loaded_and_computed_lookups_are_identical(fake_settings):
    _kb(fake_settings.kb_dir)
    run_ingest(fake_settings, progress=False)
    loaded, computed = _both(fake_settings)
    for f in dataclasses.fields(Knowledge):
        if f.name not in NOT_DERIVED:
            assert _equal(getattr(loaded, f.name), getattr(computed, f.name)), f.name
    assert loaded.docs_by_noun["トラスト"] == frozenset({"zero-trust"})
    assert "線引き" in loaded.vocab and "セキュリティ" in loaded.loanwords  # bank nouns, katakana words
    n = len(loaded.index.sentences)
    assert n > 3
    assert [loaded.sentence_tokens(i) for i in range(n)] == [computed.sentence_tokens(i) for i in range(n)]
    assert loaded.specific_nouns("ゼロトラストとは？") == computed.specific_nouns("ゼロトラストとは？") != []


def test_a_reingest_writes_the_new_generation_its_own_tables(fake_settings):
    _kb(fake_settings.kb_dir)
    run_ingest(fake_settings, progress=False)
    write_doc(fake_settings.kb_dir, "ja", "zero-trust", {"basics": "ゼロトラストは社内ネットワークも信頼しない考え方です。",
                                                         "vendors": "クラウドサービスの選定ではログ管理を確かめます。"})
    report = run_ingest(fake_settings, progress=False)
    assert report.written and "derived" in report.timings
    loaded, computed = _both(fake_settings)
    assert loaded.docs_by_noun == computed.docs_by_noun and "クラウド" in loaded.docs_by_noun
    assert loaded.loanwords == computed.loanwords and "クラウドサービス" in loaded.loanwords
    n = len(loaded.index.sentences)
    assert [loaded.sentence_tokens(i) for i in range(n)] == [computed.sentence_tokens(i) for i in range(n)]


def test_a_file_of_another_version_or_sentence_count_is_ignored(tmp_path):
    d = derived.compute([], [], [])
    gdir = tmp_path
    derived.build(gdir, [], [])
    assert derived.load(gdir, 0) is not None and derived.load(gdir, 1) is None
    with np.load(gdir / derived.FILE) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(gdir / derived.FILE, **{**arrays, "version": np.int64(derived.VERSION + 1)})
    assert derived.load(gdir, 0) is None
    assert d.docs_by_noun == {} and d.loanwords == frozenset()
