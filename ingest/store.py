"""Reading the current generation and writing the next one (layout: bpo_assistant/index.py).

A generation is written completely, fsynced, and only then named by CURRENT (os.replace of a temp file).
Its Chroma records are written before the swap, into new collections only (a delta beside the base it
shares with earlier generations, or a new base: vectorstore.py); what no live generation reads is dropped
after it. Until the swap, queries keep reading the previous generation; a killed run leaves an unnamed
generation directory and collections nobody reads, which the next run deletes.

What an edit does not change is shared with the previous generation instead of written again: the record
shards are hard links (bpo_assistant/records.py) and the vectors stay in the append-only store
(bpo_assistant/vecstore.py, ingest/rows.py), so an edit at 100k chunks writes a few MB, not 900.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpo_assistant import atomic
from bpo_assistant.index import current_generation, generation_dir, layout1_collection_name, read_jsonl
from bpo_assistant.settings import Settings
from bpo_assistant import records
from bpo_assistant.types import Chunk, Sentence

from . import cache as token_cache
from . import rows, vectorstore

# A generation is whole when these are there; chunks and sentences are in records/ (bpo_assistant/records.py)
# or, for a generation of the layout before shared vectors, in chunks.jsonl and sentences.jsonl.
_FILES = ("meta.json", "manifest.json", "vectors.npz", "bm25")
_RECORDS = (f"{records.DIR}/keys.json",)
_LEGACY_RECORDS = ("chunks.jsonl", "sentences.jsonl")


def chroma_target(settings: Settings) -> str:
    return settings.chroma_url or "embedded"


@dataclass
class Previous:
    """The generation CURRENT names. Records load lazily: the no-change path needs none."""

    gen: str
    dir: Path
    meta: dict
    manifest: dict
    _docs: dict | None = field(default=None, repr=False)

    @property
    def shared_vectors(self) -> bool:
        """Written with vectors in the shared store (meta "vectors"); else its vectors.npz holds them."""
        return "vectors" in self.meta

    def docs(self) -> dict[str, tuple[list[Chunk], list[Sentence]]]:
        """manifest key -> (chunks, sentences) of each document."""
        if self._docs is None:
            if all((self.dir / name).exists() for name in _RECORDS):
                self._docs = records.read_docs(self.dir)
            else:
                chunks = {r["id"]: Chunk(**r) for r in read_jsonl(self.dir / "chunks.jsonl")}
                sentences = {r["id"]: Sentence(**r) for r in read_jsonl(self.dir / "sentences.jsonl")}
                self._docs = {k: ([chunks[i] for i in e["chunk_ids"]], [sentences[i] for i in e["sentence_ids"]])
                              for k, e in self.manifest["docs"].items()}
        return self._docs

    def ordered(self) -> tuple[list[Chunk], list[Sentence]]:
        """Its chunks and sentences in index order (keys sorted)."""
        docs = self.docs()
        return ([c for k in sorted(docs) for c in docs[k][0]], [s for k in sorted(docs) for s in docs[k][1]])

    def legacy_vectors(self, embed_text) -> dict[str, np.ndarray]:
        """Text embedded -> vector of a generation of the layout before shared vectors (read once, to move them)."""
        chunks, sentences = self.ordered()
        by_chunk, by_sentence = {c.id: c for c in chunks}, {s.id: s for s in sentences}
        out: dict[str, np.ndarray] = {}
        with np.load(self.dir / "vectors.npz") as npz:
            for i, v in zip(npz["chunk_ids"].tolist(), npz["chunk_vectors"]):
                if i in by_chunk:
                    out.setdefault(embed_text(by_chunk[i]), v)
            for i, v in zip(npz["sentence_ids"].tolist(), npz["sentence_vectors"]):
                if i in by_sentence:
                    out.setdefault(by_sentence[i].text, v)
        return out


def read_current(settings: Settings) -> Previous | None:
    """The current generation, or None when there is none or it is incomplete (then ingest starts afresh)."""
    try:
        gen = current_generation(settings)
    except (OSError, ValueError, KeyError):
        return None
    if gen is None:
        return None
    gdir = generation_dir(settings, gen)
    if not all((gdir / name).exists() for name in _FILES) or not (
            all((gdir / name).exists() for name in _RECORDS)
            or all((gdir / name).exists() for name in _LEGACY_RECORDS)):
        return None
    try:
        meta = json.loads((gdir / "meta.json").read_text(encoding="utf-8"))
        manifest = json.loads((gdir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Previous(gen, gdir, meta, manifest)


@contextlib.contextmanager
def ingest_lock(settings: Settings):
    """One ingest per data dir at a time (CLI, `ask` on first use, the UI); the kernel drops it if killed."""
    def say() -> None:
        print(f"waiting for another ingest of {settings.data_dir} to finish…", file=sys.stderr, flush=True)

    with atomic.exclusive(settings.data_path(".ingest.lock"), on_wait=say):
        yield


def new_generation_name() -> str:
    # Sortable by time; the random tail keeps two runs in one second apart.
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def write_generation(settings: Settings, gen: str, meta: dict, manifest: dict, docs: dict, changed: set[str],
                     prior: rows.Prior, texts: dict, fresh: dict, derived=None, prev_meta: dict | None = None,
                     prev_dir: Path | None = None, timings: dict | None = None) -> None:
    """Files first: the manifest, the record shards (only those `changed` touches; the rest linked from
    `prev_dir`), the vector rows (`prior`: where the previous generation's are; `texts`: kind -> texts embedded,
    index order; `fresh`: text -> vector of the texts `prior` lacks). Then BM25, the Chroma records the previous
    generation's base lacks (`prev_meta`: its meta; None writes a new base), then `derived(gdir) -> dict` (the
    routers; merged into meta), meta.json last (its presence marks a finished generation; it names the vector
    rows the generation relies on). `prev_dir` also gives the chunk tokens BM25 reuses. `timings` gets the
    seconds of the files, bm25 and chroma steps."""
    from bpo_assistant.keyword import KeywordIndex

    timings = {} if timings is None else timings
    t = time.monotonic()
    gdir = generation_dir(settings, gen)
    gdir.mkdir(parents=True, exist_ok=False)
    chunks = [c for k in sorted(docs) for c in docs[k][0]]
    sentences = [s for k in sorted(docs) for s in docs[k][1]]
    _write_text(gdir / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
    meta["records"] = records.write(gdir, docs, prev_dir, changed)
    placed = rows.place(settings, gen, prior, int(meta["dim"]), {"chunks": chunks, "sentences": sentences},
                        texts, fresh)
    chunk_vectors = rows.opened(settings, placed, "chunks").take(np.arange(len(chunks)))
    ids = vectorstore.record_ids(chunks, chunk_vectors)
    rows.save(gdir, placed, [i.rsplit("@", 1)[1] for i in ids])
    meta["vectors"] = {"dim": placed["dim"], "files": placed["files"], "rewritten": placed["rewritten"]}
    timings["files"] = time.monotonic() - t
    t = time.monotonic()
    tok = token_cache.tokenize_chunks([c.text for c in chunks], prev_dir)
    token_cache.write(gdir, tok)
    KeywordIndex.from_tokens([c.id for c in chunks], tok.tokens).save(gdir / "bm25")
    for f in (gdir / "bm25").iterdir():
        _fsync_path(f)
    meta["bm25"] = {"chunks": len(chunks), "reused": tok.reused, "reason": tok.reason or None}
    timings["bm25"] = time.monotonic() - t
    t = time.monotonic()
    meta["collections"] = vectorstore.fill(settings, meta, chunks, chunk_vectors, ids, prev_meta)
    timings["chroma"] = time.monotonic() - t
    if derived is not None:
        meta.update(derived(gdir))
    _write_text(gdir / "meta.json", json.dumps(meta, ensure_ascii=False, indent=1))
    for d in (gdir / records.DIR, gdir, gdir.parent, settings.data_path("vectors")):
        _fsync_path(d)


def swap_current(settings: Settings, gen: str, previous: str | None = None) -> None:
    """The one step that changes what queries see: atomic rename of a fully written, fsynced pointer file.
    `previous` (the generation it replaces) is recorded so cleanup keeps it until the next ingest."""
    pointer = settings.data_path("CURRENT")
    tmp = pointer.with_name(f"CURRENT.tmp-{os.getpid()}")
    _write_text(tmp, json.dumps({"generation": gen, "previous": previous} if previous else {"generation": gen}))
    os.replace(tmp, pointer)
    _fsync_path(pointer.parent)


def previous_generation(settings: Settings) -> str | None:
    try:
        return json.loads(settings.data_path("CURRENT").read_text(encoding="utf-8")).get("previous")
    except (OSError, ValueError, AttributeError):
        return None


def cleanup(settings: Settings, keep: str | None, previous: str | None = None) -> list[str]:
    """Delete every generation but `keep` and `previous` (older ones and orphans of killed runs) and every
    collection neither reads.

    The previous generation survives one ingest because a serving process may be answering from it right now
    (its Knowledge holds that generation until its next question sees CURRENT); dropping its collection under
    that question was the NotFoundError people saw while an owner re-ingested.

    Chroma goes first: a run killed here still finds the stray directories next time, and cleans up again.
    Only this deployment's collections are touched (vectorstore.py), so a Chroma server shared with other
    installations, or with replicas of this one, keeps theirs.
    """
    root = settings.data_path("generations")
    dirs = sorted(root.iterdir()) if root.is_dir() else []
    legacy = [d.name for d in dirs if not _has_deployment(d)]
    kept = {name for d in dirs if d.name in (keep, previous) for name in _collections(settings, d)}
    vectorstore.drop_others(settings, kept, legacy)
    removed: list[str] = []
    for d in dirs:
        if d.name not in (keep, previous):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
        elif d.name == previous and previous != keep:
            # Only ingest reads tokens.npz, and only the current generation's: the previous one serves queries
            (d / token_cache.FILE).unlink(missing_ok=True)
    _drop_vector_files(settings, {n for d in dirs if d.name in (keep, previous) for n in _vector_files(d)})
    for tmp in Path(settings.data_dir).glob("CURRENT.tmp-*"):
        tmp.unlink(missing_ok=True)
    return removed


def _vector_files(gdir: Path) -> set[str]:
    try:
        return set(json.loads((gdir / "meta.json").read_text(encoding="utf-8")).get("vectors", {}).get("files", {}))
    except (OSError, ValueError, AttributeError):
        return set()


def _drop_vector_files(settings: Settings, kept: set[str]) -> None:
    """Store files no live generation names: replaced by a rewrite, or started by a killed ingest."""
    root = settings.data_path("vectors")
    if root.is_dir():
        for f in root.glob("*.f32"):
            if f.name not in kept:
                f.unlink(missing_ok=True)


def _collections(settings: Settings, gdir: Path) -> set[str]:
    """The collection names a generation's meta records (layout 1: one of its own; 2: one per language)."""
    try:
        meta = json.loads((gdir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if "collections" in meta:
        return {c["name"] for entry in meta["collections"].values() for c in entry["read"]}
    return {layout1_collection_name(settings, meta, gdir.name)}


def _has_deployment(gdir: Path) -> bool:
    try:
        return "deployment" in json.loads((gdir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
