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
from bpo_assistant.ingest import derived
from bpo_assistant.ingest.pipeline import run_ingest

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


def _counting(monkeypatch) -> dict[str, list[str]]:
    """Count MeCab as ingest/derived.py calls it: the texts passed to nouns and to tokenize."""
    calls: dict[str, list[str]] = {"nouns": [], "tokenize": []}
    for name in calls:
        real = getattr(derived, name)

        def wrapper(text, _real=real, _name=name):
            calls[_name].append(text)
            return _real(text)

        monkeypatch.setattr(derived, name, wrapper)
    return calls


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _ingested(settings):
    """The small kb ingested; (embedder, loaded index, generation dir)."""
    _kb(settings.kb_dir)
    run_ingest(settings, progress=False)
    embedder = make_embedder(settings.embedder, settings)
    index = load_index(settings, embedder)
    return embedder, index, generation_dir(settings, index.generation)


def test_an_edit_reingest_reuses_mecab_by_text_and_equals_a_full_compute(fake_settings, monkeypatch, tmp_path):
    embedder, before, old_gdir = _ingested(fake_settings)
    old_chunks = {c.text for c in before.chunks.values()}
    old_sents = {s.text for s in before.sentences}
    write_doc(fake_settings.kb_dir, "ja", "zero-trust", {"basics": "ゼロトラストは社内ネットワークも信頼しない考え方です。",
                                                         "vendors": "クラウドサービスの選定ではログ管理を確かめます。"})
    calls = _counting(monkeypatch)
    report = run_ingest(fake_settings, progress=False)
    monkeypatch.undo()
    assert report.written
    index = load_index(fake_settings, embedder)
    gdir = generation_dir(fake_settings, index.generation)
    assert gdir != old_gdir
    chunks, sentences = list(index.chunks.values()), index.sentences
    # MeCab ran only on the texts the edit brought (the bank rows are unchanged too), once each.
    new_chunks = [t for t in dict.fromkeys(c.text for c in chunks) if t not in old_chunks]
    new_sents = [t for t in dict.fromkeys(s.text for s in sentences) if t not in old_sents]
    assert new_chunks and new_sents and len(new_sents) < len(sentences)
    assert sorted(calls["nouns"]) == sorted(new_chunks)
    assert sorted(calls["tokenize"]) == sorted(new_sents)
    # The incremental file equals a full build of the same generation, array by array ...
    full = tmp_path / "full"
    full.mkdir()
    (full / "questions.jsonl").write_bytes((gdir / "questions.jsonl").read_bytes())
    derived.build(full, chunks, sentences)
    inc, ref = _arrays(gdir / derived.FILE), _arrays(full / derived.FILE)
    assert inc.keys() == ref.keys()
    for k in ref:
        assert _equal(inc[k], ref[k]), k
    # ... and what it loads equals a full compute field by field.
    loaded = derived.load(gdir, len(sentences))
    computed = derived.compute(chunks, sentences, derived.bank_texts(gdir))
    for f in dataclasses.fields(derived.Derived):
        assert _equal(getattr(loaded, f.name), getattr(computed, f.name)), f.name
    assert "クラウド" in loaded.docs_by_noun


def test_compute_with_a_cache_calls_mecab_only_for_unseen_texts(fake_settings, monkeypatch, tmp_path):
    _, index, gdir = _ingested(fake_settings)
    chunks, sentences, bank = list(index.chunks.values()), list(index.sentences), derived.bank_texts(gdir)
    cache = derived.read_cache(gdir)
    assert cache is not None and cache.tokens and cache.nouns
    edited = dataclasses.replace(sentences[0], text=sentences[0].text + "委託先の監査も行います。")
    calls = _counting(monkeypatch)
    got = derived.compute(chunks, [edited] + sentences[1:], bank, cache=cache)
    assert calls == {"nouns": [], "tokenize": [edited.text]}
    monkeypatch.undo()
    want = derived.compute(chunks, [edited] + sentences[1:], bank)
    for f in dataclasses.fields(derived.Derived):
        assert _equal(getattr(got, f.name), getattr(want, f.name)), f.name
    # A file of the old version gives no cache: everything is computed again, to the same result.
    arrays = _arrays(gdir / derived.FILE)
    old = tmp_path / "old"
    old.mkdir()
    np.savez(old / derived.FILE, **{**arrays, "version": np.int64(1)})
    assert derived.read_cache(old) is None and derived.read_cache(tmp_path) is None
    new = tmp_path / "new"
    new.mkdir()
    (new / "questions.jsonl").write_bytes((gdir / "questions.jsonl").read_bytes())
    calls = _counting(monkeypatch)
    summary = derived.build(new, chunks, sentences, old)
    assert summary["reused"] == 0 and len(calls["tokenize"]) == len({s.text for s in sentences})
    monkeypatch.undo()
    rebuilt = _arrays(new / derived.FILE)
    assert rebuilt.keys() == arrays.keys() and all(_equal(rebuilt[k], arrays[k]) for k in arrays)
