"""The on-disk index as the query side sees it: one immutable *generation* named by a pointer file.

Layout under the data dir (ingest/ writes it; this module reads it and creates only DEPLOYMENT):

    CURRENT                         {"generation": "<gen>"}; replaced atomically (os.replace) by ingest
    DEPLOYMENT                      this installation's id in collection names (unless BPO_DEPLOYMENT_ID is set)
    chroma/                         embedded Chroma (PersistentClient), one collection per generation
    generations/<gen>/meta.json     embedder spec, dim, chunker version, counts, time
    generations/<gen>/manifest.json per source file: doc key, content hash, chunk and sentence ids
    generations/<gen>/chunks.jsonl  Chunk records
    generations/<gen>/sentences.jsonl  Sentence records
    generations/<gen>/vectors.npz   chunk and sentence vectors (reused for unchanged documents)
    generations/<gen>/bm25/         keyword index over chunks

A killed ingest leaves at most an unfinished generation that CURRENT does not name; queries never see it.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import atomic
from .keyword import KeywordIndex
from .settings import Settings
from .types import Chunk, Sentence

CHUNKER_VERSION = "sections-sentences-v1"


class IndexMissing(RuntimeError):
    pass


class IndexMismatch(RuntimeError):
    pass


def current_generation(settings: Settings) -> str | None:
    pointer = settings.data_path("CURRENT")
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text(encoding="utf-8"))["generation"]


def generation_dir(settings: Settings, gen: str) -> Path:
    return settings.data_path("generations", gen)


# Keeps `<prefix>_<id>_<generation>` a valid Chroma name: alphanumeric at both ends, no "..", and short enough
# for the 63 characters chromadb's own name check still enforces in places (the server allows 512).
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,30}[A-Za-z0-9])?")


def deployment_id(settings: Settings) -> str:
    """This installation's id in collection names and metadata: BPO_DEPLOYMENT_ID, else the random one kept in
    data_dir/DEPLOYMENT (created on first use).

    Two replicas at the same data-dir path on different hosts thus get different ids, and on a shared Chroma
    server neither one's cleanup matches the other's collections. A data dir *copied* to another host carries
    its id along: each copy then needs its own BPO_DEPLOYMENT_ID (README "Several installations on one Chroma
    server").
    """
    if settings.deployment_id.strip():
        return _checked_id(settings.deployment_id.strip(), "BPO_DEPLOYMENT_ID")
    path = settings.data_path("DEPLOYMENT")
    if not path.exists():
        # Never replaces: of two processes racing here, both read the winner's id below.
        atomic.create_text(path, secrets.token_hex(6) + "\n")
    return _checked_id(path.read_text(encoding="utf-8").strip(), str(path))


def _checked_id(value: str, where: str) -> str:
    if not _DEPLOYMENT_ID.fullmatch(value) or ".." in value:
        raise ValueError(f"{where}: {value!r} is not a valid deployment id (1-32 letters, digits, '.', '_' or '-', "
                         "starting and ending with a letter or digit)")
    return value


def collection_name(settings: Settings, gen: str) -> str:
    return f"{settings.collection_prefix}_{deployment_id(settings)}_{gen}"


def chroma_client(settings: Settings):
    """Embedded PersistentClient under the data dir, or HttpClient for BPO_CHROMA_URL (a `chroma run` server)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1", port=url.port or 8000, ssl=url.scheme == "https", settings=chroma_settings
        )
    path = settings.data_path("chroma")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass
class LoadedIndex:
    """Everything the query path needs, loaded once per process."""

    generation: str
    meta: dict
    chunks: dict[str, Chunk]
    sentences: list[Sentence]
    sentence_vectors: np.ndarray
    keyword: KeywordIndex
    vectorstore: object  # langchain_chroma.Chroma
    sentences_by_chunk: dict[str, list[int]] = field(default_factory=dict)

    @property
    def doc_ids(self) -> set[str]:
        return {c.doc_id for c in self.chunks.values()}


def load_index(settings: Settings, embedder) -> LoadedIndex:
    """Open the current generation; refuse one built by another embedder rather than return garbage."""
    gen = current_generation(settings)
    if gen is None:
        raise IndexMissing(f"no index under {settings.data_dir}; run `bpo-assistant ingest` first")
    gdir = generation_dir(settings, gen)
    meta = json.loads((gdir / "meta.json").read_text(encoding="utf-8"))
    if meta.get("embedder") != embedder.spec or int(meta.get("dim", -1)) != embedder.dim:
        raise IndexMismatch(
            f"the index was built with embedder {meta.get('embedder')!r} (dim {meta.get('dim')}) but the query "
            f"embedder is {embedder.spec!r} (dim {embedder.dim}); re-ingest with `bpo-assistant ingest --rebuild`"
        )
    if meta.get("chunker") != CHUNKER_VERSION:
        raise IndexMismatch(
            f"the index was built by chunker {meta.get('chunker')!r}, this code uses {CHUNKER_VERSION!r}; "
            "re-ingest with `bpo-assistant ingest --rebuild`"
        )
    from langchain_chroma import Chroma

    store = Chroma(
        # The name ingest wrote the generation under: one from before deployment ids keeps serving until the
        # next ingest replaces it (ingest/vectorstore.py).
        collection_name=meta.get("collection") or collection_name(settings, gen),
        embedding_function=embedder,
        client=chroma_client(settings),
        create_collection_if_not_exists=False,
    )
    chunks = {row["id"]: Chunk(**row) for row in read_jsonl(gdir / "chunks.jsonl")}
    sentences = [Sentence(**row) for row in read_jsonl(gdir / "sentences.jsonl")]
    vectors = np.load(gdir / "vectors.npz")
    by_chunk: dict[str, list[int]] = {}
    for i, s in enumerate(sentences):
        by_chunk.setdefault(s.chunk_id, []).append(i)
    return LoadedIndex(
        generation=gen,
        meta=meta,
        chunks=chunks,
        sentences=sentences,
        sentence_vectors=vectors["sentence_vectors"],
        keyword=KeywordIndex.load(gdir / "bm25"),
        vectorstore=store,
        sentences_by_chunk=by_chunk,
    )
