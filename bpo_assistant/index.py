"""The on-disk index as the query side sees it: one immutable *generation* named by a pointer file.

Layout under the data dir (ingest/ writes it; this module reads it and creates only DEPLOYMENT):

    CURRENT                         {"generation": "<gen>"}; replaced atomically (os.replace) by ingest
    DEPLOYMENT                      this installation's id in collection names (unless BPO_DEPLOYMENT_ID is set)
    chroma/                         embedded Chroma (PersistentClient): per language a base and small deltas
    generations/<gen>/meta.json     embedder spec, dim, chunker version, layout, counts, its collections, time
    generations/<gen>/manifest.json per source file: doc key, content hash, chunk and sentence ids
    vectors/<kind>-<lang>-<gen>.f32 chunk and sentence vectors, append-only, shared by generations (vecstore.py)
    generations/<gen>/records/      Chunk and Sentence records in shards shared by generations (records.py)
    generations/<gen>/vectors.npz   the store row of each chunk and sentence, and each chunk's Chroma record hash
    generations/<gen>/bm25/         keyword index over chunks
    generations/<gen>/tokens.npz    each chunk's BM25 tokens by a key of its text: the next ingest's MeCab cache
                                    (ingest/cache.py; the query side never reads it)

Collections outlive generations (layout 2): per language a generation reads a base collection, often written
many generations ago, and at most one small delta with what changed since (ingest/vectorstore.py). A record's
id is its chunk id plus a hash of all Chroma stores for it, and each generation reads only the ids it lists.
A killed ingest leaves at most an unfinished generation that CURRENT does not name, and collections no
generation names; queries never see either, the next ingest deletes both.
A generation of the layout before shared vectors (chunks.jsonl, sentences.jsonl, every vector in vectors.npz)
keeps serving until the next ingest moves it.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import atomic, records, vecstore
from .keyword import KeywordIndex
from .settings import Settings
from .types import Chunk, Sentence, content_hash

CHUNKER_VERSION = "sections-sentences-v1"
# 1: a collection per generation (meta["collection"]); 2: per language a long-lived base and a delta per edit
# (meta["collections"]).
# An older layout keeps serving until the next ingest, which writes it again under this one (vectors reused).
INDEX_LAYOUT = 2


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


def collection_name(settings: Settings, gen: str, lang: str) -> str:
    """The collection generation `gen` wrote for one language: a base that later generations keep reading,
    or a delta beside an older base (ingest/vectorstore.py). At most 63 characters with a 32-character id."""
    lang = re.sub(r"[^a-z0-9]", "", lang.lower())[:3] or "x"
    return f"{settings.collection_prefix}_{deployment_id(settings)}_{gen}-{lang}"


def layout1_collection_name(settings: Settings, meta: dict, gen: str) -> str:
    """A layout-1 generation's one collection: the name its meta records, or the one it was written under."""
    return meta.get("collection") or f"{settings.collection_prefix}_{deployment_id(settings)}_{gen}"


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


@dataclass(frozen=True)
class DenseIndex:
    """A generation's view of its Chroma collections: nearest chunks among the records it lists.

    A base collection also holds chunks that later edits replaced; those are dropped here. To still return k
    hits a collection is asked for k plus the records it holds besides ours (`extra`, known from ingest), and
    asked again for more in the rare case that was not enough.
    """

    collections: dict  # lang -> [(chromadb Collection, extra)]; "*": a layout-1 collection, lang by filter
    known: dict[str, str]  # Chroma record id -> chunk id, for this generation's records only

    def search(self, qvec, k: int, lang: str | None = None, topic: str | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first; lang None: every language."""
        hits: list[tuple[str, float]] = []
        qvec = [float(x) for x in qvec]
        for col_lang, cols in self.collections.items():
            if lang and col_lang not in (lang, "*"):
                continue
            where = ([{"lang": lang}] if lang and col_lang == "*" else []) + ([{"topic": topic}] if topic else [])
            for col, extra in cols:
                hits += self._query(col, qvec, k, where, extra)
        return sorted(hits, key=lambda h: -h[1])[:k]

    def _query(self, col, qvec: list[float], k: int, where: list[dict], extra: int) -> list[tuple[str, float]]:
        n = k + extra
        while True:
            res = col.query(query_embeddings=[qvec], n_results=n, include=["distances"],
                            where=None if not where else where[0] if len(where) == 1 else {"$and": where})
            ids, dists = res["ids"][0], res["distances"][0]
            # cosine space: distance is 1 - similarity
            mine = [(self.known[i], 1.0 - float(d)) for i, d in zip(ids, dists) if i in self.known]
            if len(mine) >= k or len(ids) < n:
                return mine[:k]
            n *= 4


def open_dense(settings: Settings, meta: dict, known: dict[str, str]) -> DenseIndex:
    """The collections `meta` names. `known`: Chroma record id -> chunk id of the generation's records."""
    client = chroma_client(settings)
    if "collections" not in meta:  # layout 1, until the next ingest: record id = chunk id, lang by filter
        name = layout1_collection_name(settings, meta, meta["generation"])
        ids = list(known.values())
        return DenseIndex({"*": [(client.get_collection(name, embedding_function=None), 0)]}, dict(zip(ids, ids)))
    cols = {}
    for lang, entry in meta["collections"].items():
        extra = max(0, sum(c["records"] for c in entry["read"]) - entry["own"])  # what is not ours, at most
        cols[lang] = [(client.get_collection(c["name"], embedding_function=None), min(extra, c["records"]))
                      for c in entry["read"]]
    return DenseIndex(cols, known)


@dataclass
class LoadedIndex:
    """Everything the query path needs, loaded once per process."""

    generation: str
    meta: dict
    chunks: dict[str, Chunk]
    sentences: list[Sentence]
    sentence_vectors: np.ndarray | vecstore.Vectors  # row i: sentence i's vector
    keyword: KeywordIndex
    dense: DenseIndex
    sentences_by_chunk: dict[str, list[int]] = field(default_factory=dict)

    @property
    def doc_ids(self) -> set[str]:
        return {c.doc_id for c in self.chunks.values()}

    def sentence_rows(self) -> dict[str, tuple[np.ndarray, object]]:
        """lang -> (the sentence indices of that language, their matrix: `matrix @ q` scores them in that order).
        From the shared store, the mapped file itself (vecstore.Vectors.by_file); no copy of the vectors."""
        vectors = self.sentence_vectors
        if isinstance(vectors, vecstore.Vectors):
            return {self.sentences[int(idx[0])].lang: (idx, matrix)
                    for idx, matrix in vectors.by_file().values() if len(idx)}
        by_lang: dict[str, list[int]] = {}
        for i, s in enumerate(self.sentences):
            by_lang.setdefault(s.lang, []).append(i)
        return {lang: (np.asarray(rows, dtype=np.int64), np.ascontiguousarray(vectors[rows]))
                for lang, rows in by_lang.items()}


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
    if "vectors" in meta:
        chunk_list, sentences = records.read(gdir)
        chunks = {c.id: c for c in chunk_list}
        with np.load(gdir / "vectors.npz") as z:
            dim, root = int(meta["vectors"]["dim"]), settings.data_path("vectors")
            files = tuple(vecstore.open_rows(root, n, int(meta["vectors"]["files"][n]), dim) for n in z["files"].tolist())
            sentence_vectors = vecstore.Vectors(files, z["sentence_file"], z["sentence_row"], dim)
            known = {f"{c.id}@{h}": c.id for c, h in zip(chunk_list, z["record_hash"].astype(str).tolist())}
    else:  # the layout before shared vectors
        chunks = {row["id"]: Chunk(**row) for row in read_jsonl(gdir / "chunks.jsonl")}
        sentences = [Sentence(**row) for row in read_jsonl(gdir / "sentences.jsonl")]
        vectors = np.load(gdir / "vectors.npz")
        sentence_vectors = vectors["sentence_vectors"]
        ids = vectors["chunk_ids"].tolist()
        known = dict(zip(vectors["record_ids"].tolist(), ids)) if "collections" in meta else dict(zip(ids, ids))
    by_chunk: dict[str, list[int]] = {}
    for i, s in enumerate(sentences):
        by_chunk.setdefault(s.chunk_id, []).append(i)
    return LoadedIndex(
        generation=gen,
        meta=meta,
        chunks=chunks,
        sentences=sentences,
        sentence_vectors=sentence_vectors,
        keyword=KeywordIndex.load(gdir / "bm25"),
        # The names ingest wrote the generation under: an older layout keeps serving until the next ingest.
        dense=open_dense(settings, meta, known),
        sentences_by_chunk=by_chunk,
    )
