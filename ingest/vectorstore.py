"""The Chroma side of a generation: write only the records its collections lack, check they still serve it,
drop the collections no live generation reads.

A generation reads, per language, a long-lived *base* collection and at most one small *delta* collection
(meta["collections"]). An edit writes a new delta with the records the base lacks (the edited documents'
chunks); the base outlives any number of edits. When the delta plus the base's superseded records pass
REWRITE_AT, that generation writes a new base with exactly its records instead (compaction), so the store
never holds more than a bounded share of dead records. The old design wrote every vector again per edit (a
new collection per generation: 52-56 s of a 10k-chunk re-ingest), and one collection per language makes the
language the collection, not a `where` filter that scans.

Why not upsert and delete in one collection per language: embedded Chroma caches a collection in each
process and never sees another process's writes to it, so a UI process serving while `bpo-assistant ingest`
changes its collection returned no new records and failed every filtered query ("Error finding id"). Every
collection here is written by one ingest, before any reader opens it, and only read afterwards; a server
(`chroma run`) and the embedded store behave alike.

A record's id is its chunk id plus a hash of everything stored for it (text, metadata, vector): equal ids
mean equal records, so the base serves every generation whose chunk is unchanged, and readers take from a
collection only the ids their generation lists (index.DenseIndex). Nothing is deleted before CURRENT is
swapped: a killed ingest leaves a collection no generation names, which the next ingest drops.

Cleanup matches collections by the `deployment` in their metadata, never by the local data-dir path: two
replicas deployed at the same path on different hosts share the path but not the id. Collections of layout 1
(`<prefix>_<generation>` before deployment ids, `<prefix>_<deployment>_<generation>` after) keep serving the
generation that names them and are dropped once none does; the pre-deployment ones are first claimed by
stamping our id on them (only those our own generation directories name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from bpo_assistant.index import INDEX_LAYOUT, chroma_client, collection_name, deployment_id
from bpo_assistant.settings import Settings
from bpo_assistant.types import Chunk

_BATCH = 256
# A new base once the delta and the base's dead records together pass this share of the live records (and
# the floor, so a small kb is not rewritten on every edit): bounds disk and the extra hits a query skips,
# while an edit writes only its own records for many edits in a row.
REWRITE_AT, REWRITE_FLOOR = 0.05, 128


def _metadata(c: Chunk) -> dict:
    return {"doc_id": c.doc_id, "lang": c.lang, "topic": c.topic, "section_id": c.section_id, "title": c.title,
            "section_title": c.section_title, "ordinal": c.ordinal}


def record_ids(chunks: list[Chunk], vectors: np.ndarray) -> list[str]:
    """`<chunk id>@<hash of text, metadata and vector>`: a changed title or a re-embedding by `--rebuild`
    makes a new record instead of changing one an older generation reads."""
    out = []
    for c, v in zip(chunks, vectors):
        h = hashlib.sha256(json.dumps([c.text, _metadata(c)], ensure_ascii=False, sort_keys=True).encode("utf-8"))
        h.update(np.ascontiguousarray(v, dtype=np.float32).tobytes())
        out.append(f"{c.id}@{h.hexdigest()[:12]}")
    return out


def _base(client, meta: dict, prev: dict | None, lang: str):
    """The previous generation's base for `lang` with its ids, if it is whole and of this embedder."""
    from chromadb.errors import NotFoundError

    entry = ((prev or {}).get("collections") or {}).get(lang)
    if not entry or any(prev.get(k) != meta.get(k) for k in ("embedder", "deployment", "layout")):
        return None, set()
    try:
        col = client.get_collection(entry["read"][0]["name"], embedding_function=None)
    except NotFoundError:
        return None, set()
    ids = set(col.get(include=[])["ids"])
    return (col, ids) if len(ids) == entry["read"][0]["records"] else (None, set())


def fill(settings: Settings, meta: dict, chunks: list[Chunk], vectors: np.ndarray, ids: list[str],
         prev: dict | None) -> dict:
    """Write, per language, a delta beside the previous generation's base (`prev`: its meta) or a new base.
    Returns meta["collections"]: lang -> {"own": this generation's record count, "read": [base, delta?]},
    each {"name", "records"}.

    Vectors go in precomputed: we store the clean chunk text but embed 'title › section + text'
    (chunking.embed_text), and most vectors are reused from the previous generation anyway.
    """
    client = chroma_client(settings)
    by_lang: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_lang.setdefault(c.lang, []).append(i)
    out = {}
    for lang, rows in sorted(by_lang.items()):
        base, in_base = _base(client, meta, prev, lang)
        own = {ids[i] for i in rows}
        new = [i for i in rows if ids[i] not in in_base]
        if base is None or len(new) + len(in_base - own) > max(REWRITE_FLOOR, REWRITE_AT * len(own)):
            read = [_write(settings, client, meta, lang, chunks, vectors, ids, rows)]
        else:
            read = [{"name": base.name, "records": len(in_base)}]
            if new:
                read.append(_write(settings, client, meta, lang, chunks, vectors, ids, new))
        out[lang] = {"own": len(own), "read": read}
    return out


def _write(settings: Settings, client, meta: dict, lang: str, chunks, vectors, ids, rows: list[int]) -> dict:
    name = collection_name(settings, meta["generation"], lang)
    col = client.create_collection(
        name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
        # data_dir stays for whoever inspects the server; nothing decides by it
        metadata={"embedder": meta["embedder"], "dim": int(meta["dim"]), "lang": lang,
                  "generation": meta["generation"], "deployment": meta["deployment"],
                  "data_dir": str(Path(settings.data_dir).resolve())})
    batch = max(1, min(_BATCH, client.get_max_batch_size()))
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        col.upsert(ids=[ids[i] for i in part], embeddings=vectors[part], documents=[chunks[i].text for i in part],
                   metadatas=[_metadata(chunks[i]) for i in part])
    return {"name": name, "records": len(rows)}


def problem(settings: Settings, meta: dict) -> str | None:
    """Why the generation `meta` describes cannot keep serving as it is (completes "rebuilt the index because
    …"), or None. Other errors (server unreachable) propagate: a rebuild could not fix them."""
    from chromadb.errors import NotFoundError

    ours = deployment_id(settings)
    if "deployment" not in meta:
        return f"it predates deployment ids (its collections are now named for deployment {ours})"
    if meta["deployment"] != ours:
        return f"it was written for deployment {meta['deployment']!r}, this is deployment {ours!r}"
    if meta.get("layout") != INDEX_LAYOUT:
        return "it predates long-lived collections (a base per language, deltas for edits)"
    client = chroma_client(settings)
    for entry in meta["collections"].values():
        for c in entry["read"]:
            try:
                count = client.get_collection(c["name"], embedding_function=None).count()
            except NotFoundError:
                return f"its collection {c['name']} is missing from Chroma ({meta.get('chroma')}); someone deleted it"
            if count != c["records"]:
                return f"its collection {c['name']} holds {count} of its {c['records']} records"
    return None


def _claim_legacy(settings: Settings, client, gens: list[str], ours: str) -> None:
    from chromadb.errors import NotFoundError

    for gen in gens:
        try:
            col = client.get_collection(f"{settings.collection_prefix}_{gen}", embedding_function=None)
        except NotFoundError:
            continue
        meta = dict(col.metadata or {})
        if "deployment" not in meta:
            # modify() refuses hnsw:* keys even unchanged; a collection that cannot be claimed merely stays
            with contextlib.suppress(Exception):
                col.modify(metadata={**{k: v for k, v in meta.items() if not k.startswith("hnsw:")},
                                     "deployment": ours})


def drop_others(settings: Settings, kept: set[str], legacy: list[str] = ()) -> None:
    """Delete this deployment's collections but `kept` (those the live generations read). `legacy`:
    generations of this data dir written before deployment ids, whose collections are claimed first."""
    client = chroma_client(settings)
    ours = deployment_id(settings)
    if legacy:
        _claim_legacy(settings, client, list(legacy), ours)
    for col in client.list_collections():
        if (col.name.startswith(f"{settings.collection_prefix}_") and col.name not in kept
                and (col.metadata or {}).get("deployment") == ours):
            with contextlib.suppress(Exception):  # already gone (a concurrent cleanup) is fine
                client.delete_collection(col.name)
    if not settings.chroma_url:
        _drop_dead_segments(settings.data_path("chroma"))


def _drop_dead_segments(root: Path) -> None:
    """Embedded Chroma (1.5) deletes a collection's rows but leaves its HNSW segment folder behind, so every
    dropped collection stayed on disk. Remove the folders no segment in its catalogue names. Safe under the
    ingest lock: this store belongs to this data dir, and only an ingest creates collections in it."""
    import sqlite3
    import uuid

    db = root / "chroma.sqlite3"
    if not db.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            live = {row[0] for row in con.execute("SELECT id FROM segments")}
    except sqlite3.Error:
        return  # another catalogue layout: leave everything as it is
    for d in root.iterdir():
        with contextlib.suppress(ValueError):
            if d.is_dir() and str(uuid.UUID(d.name)) == d.name and d.name not in live:
                shutil.rmtree(d, ignore_errors=True)
