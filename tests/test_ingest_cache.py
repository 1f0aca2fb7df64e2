"""An edit re-ingest reuses every unchanged chunk's MeCab tokens (ingest/cache.py), MeCab results (derived.py)
and sentence vectors, and the index it writes behaves exactly like a from-scratch ingest of the same kb: the same
BM25 hits and scores, the same derived tables, the same vectors. The token cache holds only the live chunks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_settings, write_doc

from bpo_assistant import keyword as keyword_mod
import dataclasses

from bpo_assistant import records
from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant.index import current_generation, generation_dir, load_index
from bpo_assistant.keyword import KeywordIndex
from bpo_assistant.ingest import cache, derived
from bpo_assistant.ingest import store as store_mod
from bpo_assistant.ingest.pipeline import run_ingest

SECTIONS = {f"s{i}": f"第{i}節では委託先の選定と請負契約の範囲を確認します。\nBPOの品質指標{i}は月次で見直します。"
            for i in range(6)}
OTHER = {"a": "準委任契約は業務の遂行を目的とします。\nシェアードサービスはグループ内で業務を集約します。",
         "b": "セキュリティ対策では個人情報の取り扱いを委託先と決めます。"}
QUERIES = ("委託先の選定", "請負契約", "準委任", "シェアードサービス", "品質指標", "セキュリティ 個人情報", "BPO",
           "outsourcing vendor")


def _kb(kb, edition: int) -> None:
    write_doc(kb, "ja", "senten", SECTIONS, title="選定")
    write_doc(kb, "ja", "keiyaku", {**OTHER, "b": OTHER["b"] + f"\n見直しは第{edition}版で行いました。"},
              title="契約")
    write_doc(kb, "en", "vendor", {"v": "Outsourcing hands work to an outside vendor.\nBPO hands over a process."})


def _gdir(settings):
    return generation_dir(settings, current_generation(settings))


def read_jsonl(path) -> list[dict]:
    """The generation's chunk records (the records/ shards; `path` names the generation dir's chunks)."""
    return [dataclasses.asdict(c) for c in records.read(path.parent)[0]]


def _vectors(settings) -> tuple:
    """What the current generation serves: its sentences with their vectors, its chunks with theirs and their
    Chroma record ids (the mapped store, read through the query side's own loader)."""
    idx = load_index(settings, FakeEmbeddings(32))
    chunks, _ = records.read(_gdir(settings))
    with np.load(_gdir(settings) / "vectors.npz") as z:
        hashes = z["record_hash"].tolist()
    return ([(s, np.asarray(idx.sentence_vectors[i])) for i, s in enumerate(idx.sentences)],
            [c.id for c in chunks], hashes, sorted(idx.dense.known))


def _tokenize_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = cache.tokenize

    def counting(text):
        if text != cache.PROBE:  # the cache's own check of the tokenizer, two calls per ingest
            calls.append(text)
        return real(text)

    monkeypatch.setattr(cache, "tokenize", counting)
    monkeypatch.setattr(keyword_mod, "tokenize", counting)
    return calls


def _hits(gdir) -> dict:
    kw = KeywordIndex.load(gdir / "bm25")
    return {q: kw.search(q, k=50) for q in QUERIES} | {"vocab": sorted(kw.vocab.items())}


def _npz(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture
def incremental_and_scratch(tmp_path, monkeypatch):
    """The kb ingested, edited three times with a re-ingest each; then the same kb ingested into a new data dir."""
    kb = tmp_path / "kb"
    inc = make_settings(tmp_path / "inc", kb, embedder="fake:32")
    _kb(kb, 0)
    run_ingest(inc, progress=False)
    calls = []
    for edition in range(1, 4):
        _kb(kb, edition)
        calls = _tokenize_calls(monkeypatch)
        assert run_ingest(inc, progress=False).changed == 1
        monkeypatch.undo()
    scratch = make_settings(tmp_path / "scratch", kb, embedder="fake:32")
    run_ingest(scratch, progress=False)
    return inc, scratch, calls


def test_an_edit_tokenizes_only_the_edited_chunk_and_equals_a_scratch_ingest(incremental_and_scratch):
    inc, scratch, calls = incremental_and_scratch
    a, b = _gdir(inc), _gdir(scratch)
    chunks = read_jsonl(a / "chunks.jsonl")
    edited = [c["text"] for c in chunks if "第3版" in c["text"]]
    # BM25 tokenized the one edited chunk (the derived stage tokenizes its new sentences through text.py, not here)
    assert calls == edited and len(edited) == 1 and len(chunks) > 5
    meta = store_mod.read_current(inc).meta
    assert meta["bm25"] == {"chunks": len(chunks), "reused": len(chunks) - 1, "reason": None}
    assert _hits(a) == _hits(b)
    assert any(len(h) > 1 for q, h in _hits(a).items() if q != "vocab")
    assert KeywordIndex.load(a / "bm25").ids == KeywordIndex.load(b / "bm25").ids
    for name in (derived.FILE, cache.FILE):
        x, y = _npz(a / name), _npz(b / name)
        assert x.keys() == y.keys(), name
        for k in x:
            assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), (name, k)
    assert records.read(a) == records.read(b)
    (sx, *cx), (sy, *cy) = _vectors(inc), _vectors(scratch)
    assert cx == cy  # the same chunks with the same Chroma records (the id hashes each vector too)
    assert len(sx) == len(sy) and all(p == q and np.array_equal(u, v) for (p, u), (q, v) in zip(sx, sy))


def test_the_token_cache_holds_only_the_live_chunks(incremental_and_scratch):
    inc, _, _ = incremental_and_scratch
    gdir = _gdir(inc)
    chunks = read_jsonl(gdir / "chunks.jsonl")
    cached, reason = cache.read(gdir)
    assert reason == "" and set(cached) == {derived.key(c["text"]) for c in chunks}
    assert not any("第2版" in " ".join(t) for t in cached.values())  # the superseded edition is pruned
    assert cached[derived.key(chunks[0]["text"])] == cache.tokenize(chunks[0]["text"])


def test_a_cache_the_tokenizer_no_longer_reproduces_is_ignored(fake_settings, monkeypatch):
    _kb(fake_settings.kb_dir, 0)
    run_ingest(fake_settings, progress=False)
    gdir = _gdir(fake_settings)
    arrays = _npz(gdir / cache.FILE)
    np.savez(gdir / cache.FILE, **{**arrays, "probe": np.array(["別の", "辞書"])})
    assert cache.read(gdir)[0] == {} and "probe" in cache.read(gdir)[1]
    np.savez(gdir / cache.FILE, **{**arrays, "version": np.int64(cache.VERSION + 1)})
    assert cache.read(gdir)[0] == {} and "version" in cache.read(gdir)[1]
    good = (gdir / cache.FILE).read_bytes()
    (gdir / cache.FILE).write_bytes(good[: len(good) // 2])  # a disk that lost the file's tail
    assert cache.read(gdir)[0] == {} and "unreadable" in cache.read(gdir)[1]
    np.savez(gdir / cache.FILE, **{**arrays, "version": np.int64(cache.VERSION + 1)})
    _kb(fake_settings.kb_dir, 1)
    calls = _tokenize_calls(monkeypatch)
    run_ingest(fake_settings, progress=False)
    monkeypatch.undo()
    new = _gdir(fake_settings)
    chunks = read_jsonl(new / "chunks.jsonl")
    assert len(calls) == len({c["text"] for c in chunks})  # every chunk tokenized again
    meta = store_mod.read_current(fake_settings).meta["bm25"]
    assert meta["reused"] == 0 and "version" in meta["reason"]
    assert cache.read(new)[1] == ""  # and the new generation's file is good again
    assert _hits(new)["委託先の選定"]
