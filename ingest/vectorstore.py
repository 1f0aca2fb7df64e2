"""The Chroma side of a generation: fill its collection, check it still serves, drop the ones no longer needed.

A collection is named `<prefix>_<deployment>_<generation>` (bpo_assistant/index.py) and records `deployment`
in its metadata. Cleanup matches that metadata only, never the local data-dir path: two replicas deployed at
the same path on different hosts share the path but not the id, and on one `chroma run` server each ingest
used to delete the other's collections.

Indexes written before deployment ids (collections `<prefix>_<generation>`, `data_dir` but no `deployment` in
their metadata) keep serving: the query side opens the name recorded in meta.json. Their meta has no
`deployment`, so the next ingest does not take the no-change path but writes the generation again under the
new naming (vectors reused, nothing re-embedded). Cleanup first claims the legacy collections that our own
generation directories name, by stamping our id on them (generation names carry a random tail, so another
host's directories never name ours), and then drops them like any of ours once no serving process can need
them. Legacy collections no generation directory of ours names are never touched.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from bpo_assistant.index import CHUNKER_VERSION, chroma_client, collection_name, deployment_id, generation_dir
from bpo_assistant.settings import Settings
from bpo_assistant.types import Chunk


def fill(settings: Settings, meta: dict, chunks: list[Chunk], vectors: np.ndarray) -> None:
    """A new collection per generation (named by meta["collection"]), created through langchain_chroma and
    filled with our vectors.

    Vectors go in precomputed (collection.upsert with embeddings) rather than through Chroma.add_texts:
    add_texts embeds the stored document, but we store the clean chunk text and embed 'title › section +
    text' (chunking.embed_text), and most vectors are reused from the previous generation anyway. A caching
    Embeddings keyed by the stored text could not tell apart equal texts in different sections.
    """
    from langchain_chroma import Chroma

    client = chroma_client(settings)
    store = Chroma(
        collection_name=meta["collection"], embedding_function=None, client=client,
        # data_dir stays for whoever inspects the server; nothing decides by it any more
        collection_metadata={"embedder": meta["embedder"], "dim": int(meta["dim"]), "chunker": CHUNKER_VERSION,
                             "generation": meta["generation"], "deployment": meta["deployment"],
                             "data_dir": str(Path(settings.data_dir).resolve())},
        collection_configuration={"hnsw": {"space": "cosine"}},
    )
    collection = store._collection  # noqa: SLF001 - the documented way to reach the chromadb collection
    batch = max(1, min(256, client.get_max_batch_size()))
    for start in range(0, len(chunks), batch):
        part = chunks[start : start + batch]
        collection.upsert(
            ids=[c.id for c in part],
            embeddings=vectors[start : start + batch].tolist(),
            documents=[c.text for c in part],
            metadatas=[{"doc_id": c.doc_id, "lang": c.lang, "topic": c.topic, "section_id": c.section_id,
                        "title": c.title, "section_title": c.section_title, "ordinal": c.ordinal} for c in part],
        )


def problem(settings: Settings, meta: dict) -> str | None:
    """Why the generation `meta` describes cannot keep serving as it is (completes "rebuilt the index because
    …"), or None. Other errors (server unreachable) propagate: a rebuild could not fix them."""
    from chromadb.errors import NotFoundError

    ours = deployment_id(settings)
    if "deployment" not in meta:
        return f"it predates deployment ids (its collections are now named for deployment {ours})"
    if meta["deployment"] != ours:
        return f"it was written for deployment {meta['deployment']!r}, this is deployment {ours!r}"
    name = meta.get("collection") or collection_name(settings, meta["generation"])
    try:
        count = chroma_client(settings).get_collection(name).count()
    except NotFoundError:
        return f"its collection {name} is missing from Chroma ({meta.get('chroma')}); someone deleted it"
    if count != meta["chunks"]:
        return f"its collection {name} holds {count} of its {meta['chunks']} chunks"
    return None


def _recorded_name(settings: Settings, gen: str) -> str | None:
    try:
        return json.loads((generation_dir(settings, gen) / "meta.json").read_text(encoding="utf-8"))["collection"]
    except (OSError, ValueError, KeyError):
        return None


def _claim_legacy(settings: Settings, client, gens: list[str], ours: str) -> None:
    from chromadb.errors import NotFoundError

    for gen in gens:
        try:
            col = client.get_collection(f"{settings.collection_prefix}_{gen}")
        except NotFoundError:
            continue
        meta = dict(col.metadata or {})
        if "deployment" not in meta:
            # modify() refuses hnsw:* keys even unchanged; a collection that cannot be claimed merely stays
            with contextlib.suppress(Exception):
                col.modify(metadata={**{k: v for k, v in meta.items() if not k.startswith("hnsw:")},
                                     "deployment": ours})


def drop_others(settings: Settings, keep: str | None, previous: str | None, legacy: list[str] = ()) -> None:
    """Delete this deployment's collections but those of `keep` and `previous`. `legacy`: generations of this
    data dir written before deployment ids (read their meta before their directories go), claimed first."""
    client = chroma_client(settings)
    ours = deployment_id(settings)
    if legacy:
        _claim_legacy(settings, client, list(legacy), ours)
    kept = {collection_name(settings, g) for g in (keep, previous) if g}
    # the names actually written: a legacy `previous` must survive its one ingest like any other
    kept |= {n for g in (keep, previous) if g and (n := _recorded_name(settings, g))}
    for col in client.list_collections():
        if (col.name.startswith(f"{settings.collection_prefix}_") and col.name not in kept
                and (col.metadata or {}).get("deployment") == ours):
            with contextlib.suppress(Exception):  # already gone (a concurrent cleanup) is fine
                client.delete_collection(col.name)
