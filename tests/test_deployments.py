"""Replicas sharing one Chroma store never delete each other's collections (issue 11): collections are named
and cleaned by a deployment id, never by the local data-dir path, and an ingest that finds its collection gone
rebuilds it instead of reporting "Index up to date"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_settings, write_doc
from test_ingest_real import chroma_server  # noqa: F401 - the module's `chroma run` fixture

from bpo_assistant import atomic
from bpo_assistant.assistant import Assistant
from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant.index import chroma_client, collection_name, current_generation, deployment_id, load_index
from bpo_assistant.ingest.pipeline import cli_ingest, run_ingest

DOCS = {
    "a": {"itaku": "委託とは業務を外部に任せることです。\nBPOは業務プロセスをまとめて委託します。"},
    "b": {"keiyaku": "請負契約は成果物の完成を目的とします。\n準委任契約は業務の遂行を目的とします。"},
}


def replica(data_dir: Path, root: Path, name: str, **kw):
    settings = make_settings(data_dir, root / f"kb-{name}", embedder="fake:32", **kw)
    write_doc(settings.kb_dir, "ja", f"doc-{name}", DOCS[name])
    return settings


def edit(settings, n: int) -> None:
    name = settings.kb_dir.name.removeprefix("kb-")
    write_doc(settings.kb_dir, "ja", f"doc-{name}", {k: v + f"\n改訂{n}です。" for k, v in DOCS[name].items()})


def ingest(settings):
    return run_ingest(settings, progress=False)


def assert_answers(settings, doc_id: str) -> None:
    """Its current collections are there and hold its own chunks only; a question gets through the whole path."""
    idx = load_index(settings, FakeEmbeddings(32))
    hits = idx.dense.search(FakeEmbeddings(32).queries(["委託"])[0], 50)
    assert sorted(c for c, _ in hits) == sorted(idx.chunks)
    stored = [m for cols in idx.dense.collections.values() for col, _ in cols for m in col.get()["metadatas"]]
    assert {m["doc_id"] for m in stored} == {doc_id}
    assert Assistant.from_settings(settings).ask("委託とは何ですか").text


def read_by(settings, *gens: str) -> list[str]:
    """The collections these generations read (a base per language, maybe a delta)."""
    import json

    names = set()
    for g in gens:
        meta = json.loads(settings.data_path("generations", g, "meta.json").read_text(encoding="utf-8"))
        names |= {c["name"] for entry in meta["collections"].values() for c in entry["read"]}
    return sorted(names)


def ours(settings) -> list[str]:
    mine = deployment_id(settings)
    return sorted(c.name for c in chroma_client(settings).list_collections()
                  if (c.metadata or {}).get("deployment") == mine)


def move_host(data_dir: Path, away: Path, back: Path | None = None, keep: str | None = None) -> None:
    """Take this host's files out of `data_dir` (all but `keep`, the store both hosts share) and put another
    host's (`back`) in: two hosts deployed at the same path."""
    away.mkdir()
    for p in list(data_dir.iterdir()):
        if p.name != keep:
            shutil.move(p, away / p.name)
    if back is not None:
        for p in list(back.iterdir()):
            shutil.move(p, data_dir / p.name)
        back.rmdir()


def test_replicas_at_the_same_path_keep_each_others_collections(tmp_path):
    data = tmp_path / "data"
    a, b = replica(data, tmp_path, "a"), replica(data, tmp_path, "b")
    first_a, id_a = ingest(a), deployment_id(a)
    move_host(data, tmp_path / "host-a", keep="chroma")  # the embedded store stands in for a shared server
    gens = [ingest(b).generation]
    assert deployment_id(b) != id_a
    for n in (1, 2):  # the second edit makes b's cleanup drop its own first generation
        edit(b, n)
        gens.append(ingest(b).generation)
    assert ours(b) == read_by(b, *gens[1:])
    move_host(data, tmp_path / "host-b", back=tmp_path / "host-a", keep="chroma")
    assert current_generation(a) == first_a.generation
    assert ours(a) == [collection_name(a, first_a.generation, "ja")]
    assert_answers(a, "doc-a")
    again = ingest(a)
    assert not again.written and not again.rebuilt


@pytest.mark.server
@pytest.mark.slow
def test_replicas_at_the_same_path_share_a_chroma_server(chroma_server, tmp_path):  # noqa: F811
    data = tmp_path / "srv" / "data"
    a = replica(data, tmp_path, "a", chroma_url=chroma_server)
    b = replica(data, tmp_path, "b", chroma_url=chroma_server)
    first_a = ingest(a)
    shutil.move(data, tmp_path / "host-a")  # host a's disk; host b is deployed at the same path
    ingest(b)
    for n in (1, 2):
        edit(b, n)
        assert ingest(b).written
    assert_answers(b, "doc-b")
    shutil.move(data, tmp_path / "host-b")
    shutil.move(tmp_path / "host-a", data)
    assert_answers(a, "doc-a")
    again = ingest(a)
    assert not again.written and not again.rebuilt and again.generation == first_a.generation


def test_up_to_date_rebuilds_a_collection_deleted_behind_its_back(tmp_path, capsys):
    s = replica(tmp_path / "data", tmp_path, "a")
    first = ingest(s)
    client = chroma_client(s)
    client.delete_collection(collection_name(s, first.generation, "ja"))
    assert cli_ingest(s, None, quiet=True) == 0
    out = capsys.readouterr().out
    assert out.startswith("Ingested") and "missing from Chroma" in out and "0 texts embedded" in out
    second = current_generation(s)
    assert second != first.generation
    assert_answers(s, "doc-a")
    # a collection that lost chunks is rebuilt too
    col = client.get_collection(collection_name(s, second, "ja"))
    col.delete(ids=col.get(limit=1)["ids"])
    report = ingest(s)
    assert report.written and f"holds {report.chunks - 1} of its {report.chunks} records" in report.rebuilt
    assert client.get_collection(collection_name(s, report.generation, "ja")).count() == report.chunks
    assert not ingest(s).written  # and once whole again, nothing to do


def test_an_index_from_before_deployment_ids_serves_then_migrates(tmp_path):
    import json

    s = replica(tmp_path / "data", tmp_path, "a")
    first = ingest(s)
    # rewrite it the way the previous release left it: `<prefix>_<gen>`, no deployment anywhere, no DEPLOYMENT
    client, mine = chroma_client(s), str(s.data_dir.resolve())
    new = client.get_collection(collection_name(s, first.generation, "ja"))
    rows = new.get(include=["embeddings", "documents", "metadatas"])
    legacy = f"bpo_{first.generation}"
    client.create_collection(legacy, metadata={"generation": first.generation, "data_dir": mine},
                             configuration={"hnsw": {"space": "cosine"}}).add(
        # that release's record ids were the chunk ids
        ids=[i.split("@")[0] for i in rows["ids"]], embeddings=rows["embeddings"], documents=rows["documents"],
        metadatas=rows["metadatas"])
    client.delete_collection(new.name)
    meta_path = s.data_path("generations", first.generation, "meta.json")
    meta = json.loads(meta_path.read_text())
    for key in ("deployment", "layout", "collections"):
        del meta[key]
    meta_path.write_text(json.dumps({**meta, "collection": legacy}))
    s.data_path("DEPLOYMENT").unlink()
    stranger = client.create_collection("bpo_19990101T000000-abcdef", metadata={"data_dir": mine})
    assert_answers(s, "doc-a")  # the query side opens the name the generation recorded

    report = ingest(s)
    assert report.written and "predates deployment ids" in report.rebuilt and report.embedded == 0
    assert_answers(s, "doc-a")
    names = ours(s)  # the legacy collection is claimed but kept: a server may still answer from it
    assert names == sorted([legacy, collection_name(s, report.generation, "ja")])
    edit(s, 1)
    last = ingest(s)
    assert ours(s) == read_by(s, report.generation, last.generation)
    # one no generation of ours names is not ours to delete, whatever data_dir it records
    assert stranger.name in [c.name for c in client.list_collections()]


def test_deployment_file_is_created_once_and_an_explicit_id_wins(tmp_path, monkeypatch):
    s = make_settings(tmp_path / "data")
    first = deployment_id(s)
    assert s.data_path("DEPLOYMENT").read_text().strip() == first
    assert deployment_id(make_settings(tmp_path / "data")) == first
    assert deployment_id(make_settings(tmp_path / "other")) != first
    # a second creator never replaces the first one's id
    assert atomic.create_text(s.data_path("DEPLOYMENT"), "intruder\n") is False
    assert deployment_id(s) == first

    monkeypatch.setenv("BPO_DEPLOYMENT_ID", "replica-2.tokyo")
    explicit = replica(tmp_path / "data", tmp_path, "a")
    assert deployment_id(explicit) == "replica-2.tokyo"
    report = ingest(explicit)
    assert ours(explicit) == [f"bpo_replica-2.tokyo_{report.generation}-ja"]
    assert s.data_path("DEPLOYMENT").read_text().strip() == first

    for bad in ("-x", "a..b", "has space", "x" * 33):
        monkeypatch.setenv("BPO_DEPLOYMENT_ID", bad)
        with pytest.raises(ValueError, match="BPO_DEPLOYMENT_ID"):
            deployment_id(make_settings(tmp_path / "data"))
