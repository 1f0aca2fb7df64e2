"""Generations share what an edit does not change (bpo_assistant/vecstore.py, records.py): an edit appends only its
new vectors and writes only its record shard, the rest is one copy on disk however many edits follow; the query
side maps the vectors instead of loading and copying them; a killed ingest's appended rows are never read and are
cut off by the next run; an index of the layout before shared vectors keeps serving and is moved by the next
ingest with its vectors reused."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from conftest import write_doc
from test_ingest_pipeline import (_subprocess_env, assert_consistent, assert_previous_serves, ingest, read_meta,
                                  write_kb)

from bpo_assistant import records, vecstore
from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant.index import current_generation, generation_dir, load_index
from bpo_assistant.ingest.chunking import embed_text
from bpo_assistant.settings import REPO_ROOT


def _files(settings) -> dict[str, int]:
    """The vector files the current generation reads, with the rows it relies on."""
    return read_meta(settings, current_generation(settings))["vectors"]["files"]


def _sizes(settings) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in settings.data_path("vectors").iterdir()}


def _edit(settings, n: int) -> None:
    write_doc(settings.kb_dir, "ja", "shared", {"shared": f"シェアードサービスの説明を書き直しました。第{n}版です。"},
              title="shared title")


def test_an_edit_appends_its_new_vectors_and_links_the_unchanged_shards(fake_settings):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    files = _files(fake_settings)
    assert sum(files.values()) == first.chunks + first.sentences  # one row per record, nothing else
    _edit(fake_settings, 1)
    report = ingest(fake_settings)
    assert report.embedded == 3  # the chunk and its two sentences
    after = _files(fake_settings)
    assert after.keys() == files.keys()  # the same files, appended to: a one-doc edit rewrites none
    assert sum(after.values()) == sum(files.values()) + 3
    assert _sizes(fake_settings) == {n: rows * 32 * 4 for n, rows in after.items()}
    old, new = (generation_dir(fake_settings, g) / records.DIR for g in (first.generation, report.generation))
    meta = read_meta(fake_settings, report.generation)["records"]
    assert meta["written"] == 1 and meta["linked"] == meta["shards"] - 1
    shard = records.shard_of("ja/shared.md")
    for f in new.glob("*.jsonl"):  # every other shard is the previous generation's file, not a copy
        assert os.path.samefile(f, old / f.name) is (f.stem != shard), f.name
    assert_consistent(fake_settings)


def test_ten_edits_keep_the_store_at_its_size(fake_settings, monkeypatch):
    monkeypatch.setattr(vecstore, "REWRITE_FLOOR", 4)
    write_kb(fake_settings)
    first = ingest(fake_settings)
    read, disk = [], []
    for n in range(10):
        _edit(fake_settings, n)
        assert ingest(fake_settings).changed == 1
        read.append(sum(_files(fake_settings).values()))
        disk.append(sum(os.path.getsize(f) for f in fake_settings.data_path("vectors").iterdir()) // (32 * 4))
    live = first.chunks + first.sentences
    # A file whose dead rows pass the floor is written anew (the older one stays while the previous generation
    # may still be serving): a generation never reads more than floor + 1 dead rows per file (4 files here).
    assert max(read) <= live + 4 * 5 and max(disk) <= 2 * (live + 4 * 5)
    assert min(read[3:]) < max(read[3:])  # rewrites happened: without them every edit adds a dead row or two
    files = {f.name for f in fake_settings.data_path("vectors").iterdir()}
    gens = os.listdir(fake_settings.data_path("generations"))
    assert files == {n for g in gens for n in read_meta(fake_settings, g)["vectors"]["files"]}  # no orphan file
    assert_consistent(fake_settings)


def test_the_query_side_maps_the_vectors_and_copies_none(fake_settings):
    write_kb(fake_settings)
    ingest(fake_settings)
    _edit(fake_settings, 1)  # appended rows: this language's file is no longer in index order
    ingest(fake_settings)
    idx = load_index(fake_settings, FakeEmbeddings(32))
    q = FakeEmbeddings(32).queries(["シェアードサービスとは"])[0]
    by_lang = idx.sentence_rows()
    assert set(by_lang) == {"ja", "en"}
    for lang, (rows, matrix) in by_lang.items():
        base = matrix.mm if isinstance(matrix, vecstore.LiveRows) else matrix
        assert isinstance(base, np.memmap)  # pages of the file, shared by every process that maps it
        assert sorted(rows.tolist()) == [i for i, s in enumerate(idx.sentences) if s.lang == lang]
        want = np.array([float(np.dot(FakeEmbeddings(32).passages([idx.sentences[i].text])[0], q)) for i in rows])
        np.testing.assert_allclose(matrix @ q, want, atol=1e-5)
    assert isinstance(by_lang["ja"][1], vecstore.LiveRows)


KILL_AFTER_ROWS = ("import os, signal, sys\n"
                   "import bpo_assistant.ingest.rows as rows\n"
                   "real = rows.save\n"
                   "def save(*a, **k):\n"
                   "    real(*a, **k)\n"
                   "    os.kill(os.getpid(), signal.SIGKILL)  # rows appended, meta.json not written\n"
                   "rows.save = save\n"
                   "from bpo_assistant.cli import main\n"
                   "sys.exit(main(['ingest', '--quiet']))\n")


def test_rows_a_killed_ingest_appended_are_never_read_and_cut_off_next_time(fake_settings):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    files = _files(fake_settings)
    _edit(fake_settings, 1)
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_ROWS], cwd=REPO_ROOT, env=_subprocess_env(fake_settings),
                          capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    grown = {n: s for n, s in _sizes(fake_settings).items() if n in files and s > files[n] * 32 * 4}
    assert grown  # the killed run appended its rows past what the current generation relies on
    assert_previous_serves(fake_settings, first)
    idx, fake = load_index(fake_settings, FakeEmbeddings(32)), FakeEmbeddings(32)
    for i, s in enumerate(idx.sentences):  # every served vector is still its text's
        np.testing.assert_allclose(idx.sentence_vectors[i], fake.passages([s.text])[0], atol=1e-6)
    after = ingest(fake_settings)
    assert after.written and after.embedded == 3
    assert _sizes(fake_settings) == {n: rows * 32 * 4 for n, rows in _files(fake_settings).items()}
    assert_consistent(fake_settings)


def test_an_index_of_the_older_layout_serves_and_the_next_ingest_moves_it(fake_settings):
    """A data dir written before shared vectors: chunks.jsonl, sentences.jsonl and every vector in vectors.npz."""
    write_kb(fake_settings)
    ingest(fake_settings)
    gdir = generation_dir(fake_settings, current_generation(fake_settings))
    chunks, sentences = records.read(gdir)
    meta = read_meta(fake_settings, gdir.name)
    idx = load_index(fake_settings, FakeEmbeddings(32))
    cvec = FakeEmbeddings(32).passages([embed_text(c) for c in chunks])
    with np.load(gdir / "vectors.npz") as z:
        hashes = z["record_hash"].astype(str).tolist()
    for name, rows in (("chunks.jsonl", chunks), ("sentences.jsonl", sentences)):
        (gdir / name).write_text("".join(json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n" for r in rows), "utf-8")
    np.savez(gdir / "vectors.npz", chunk_ids=np.array([c.id for c in chunks]), chunk_vectors=cvec,
             record_ids=np.array([f"{c.id}@{h}" for c, h in zip(chunks, hashes)]),
             sentence_ids=np.array([s.id for s in sentences]),
             sentence_vectors=np.stack([idx.sentence_vectors[i] for i in range(len(sentences))]))
    del meta["vectors"], meta["records"]
    (gdir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    for d in (gdir / records.DIR, fake_settings.data_path("vectors")):
        shutil.rmtree(d)
    old = load_index(fake_settings, FakeEmbeddings(32))  # serves as it is
    assert len(old.sentences) == len(sentences) and old.dense.search(cvec[0], 3)
    _edit(fake_settings, 1)
    report = ingest(fake_settings)
    assert report.written and report.embedded == 3  # every other vector came from the old vectors.npz
    assert sum(_files(fake_settings).values()) == report.chunks + report.sentences
    assert_consistent(fake_settings)


def test_a_missing_vector_file_is_embedded_again_not_read(fake_settings):
    write_kb(fake_settings)
    ingest(fake_settings)
    for f in fake_settings.data_path("vectors").iterdir():
        if f.name.startswith("sentences-en-"):
            f.unlink()
    _edit(fake_settings, 1)
    report = ingest(fake_settings)
    en = sum(1 for s in load_index(fake_settings, FakeEmbeddings(32)).sentences if s.lang == "en")
    assert report.written and report.embedded == 3 + en
    assert_consistent(fake_settings)
