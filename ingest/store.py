"""Reading the current generation and writing the next one (layout: bpo_assistant/index.py).

A generation is written completely, fsynced, and only then named by CURRENT (os.replace of a temp file).
Its Chroma records are written before the swap, into new collections only (a delta beside the base it
shares with earlier generations, or a new base: vectorstore.py); what no live generation reads is dropped
after it. Until the swap, queries keep reading the previous generation; a killed run leaves an unnamed
generation directory and collections nobody reads, which the next run deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from bpo_assistant import atomic
from bpo_assistant.index import current_generation, generation_dir, layout1_collection_name, read_jsonl
from bpo_assistant.settings import Settings
from bpo_assistant.types import Chunk, Sentence

from . import cache as token_cache
from . import vectorstore

_FILES = ("meta.json", "manifest.json", "chunks.jsonl", "sentences.jsonl", "vectors.npz", "bm25")


def chroma_target(settings: Settings) -> str:
    return settings.chroma_url or "embedded"


@dataclass
class Previous:
    """The generation CURRENT names. Records and vectors load lazily: the no-change path needs neither."""

    gen: str
    dir: Path
    meta: dict
    manifest: dict
    _rows: tuple | None = field(default=None, repr=False)

    def records(self) -> tuple[dict[str, Chunk], dict[str, Sentence], dict[str, np.ndarray], dict[str, np.ndarray]]:
        if self._rows is None:
            chunks = {r["id"]: Chunk(**r) for r in read_jsonl(self.dir / "chunks.jsonl")}
            sentences = {r["id"]: Sentence(**r) for r in read_jsonl(self.dir / "sentences.jsonl")}
            with np.load(self.dir / "vectors.npz") as npz:
                cvec = dict(zip(npz["chunk_ids"].tolist(), npz["chunk_vectors"]))
                svec = dict(zip(npz["sentence_ids"].tolist(), npz["sentence_vectors"]))
            self._rows = (chunks, sentences, cvec, svec)
        return self._rows


def read_current(settings: Settings) -> Previous | None:
    """The current generation, or None when there is none or it is incomplete (then ingest starts afresh)."""
    try:
        gen = current_generation(settings)
    except (OSError, ValueError, KeyError):
        return None
    if gen is None:
        return None
    gdir = generation_dir(settings, gen)
    if not all((gdir / name).exists() for name in _FILES):
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
    with atomic.exclusive(settings.data_path(".ingest.lock")):
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


def _jsonl(records) -> str:
    """One JSON object per record, its fields in declaration order. Chunk and Sentence hold only scalars, so a
    shallow dict is what dataclasses.asdict gives, without its deep copy (8 of 12 s of writing 40k rows)."""
    records = list(records)
    names = [f.name for f in fields(records[0])] if records else []
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return "".join(dumps({n: getattr(r, n) for n in names}) + "\n" for r in records)


def write_generation(settings: Settings, gen: str, meta: dict, manifest: dict, chunks: list[Chunk],
                     sentences: list[Sentence], chunk_vectors: np.ndarray, sentence_vectors: np.ndarray,
                     derived=None, prev_meta: dict | None = None, prev_dir: Path | None = None,
                     timings: dict | None = None) -> None:
    """Files first, then the Chroma records the previous generation's base lacks (`prev_meta`: its meta;
    None writes a new base), then `derived(gdir) -> dict` (the routers; merged into meta), meta.json last
    (its presence marks a finished generation). `prev_dir`: the generation whose chunk tokens BM25 reuses
    (None: tokenize every chunk). `timings` gets the seconds of the files, bm25 and chroma steps."""
    from bpo_assistant.keyword import KeywordIndex

    timings = {} if timings is None else timings
    t = time.monotonic()
    gdir = generation_dir(settings, gen)
    gdir.mkdir(parents=True, exist_ok=False)
    ids = vectorstore.record_ids(chunks, chunk_vectors)
    _write_text(gdir / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
    _write_text(gdir / "chunks.jsonl", _jsonl(chunks))
    _write_text(gdir / "sentences.jsonl", _jsonl(sentences))
    with open(gdir / "vectors.npz", "wb") as fh:
        # Plain unicode arrays (not object arrays) so np.load needs no pickle.
        np.savez(fh, chunk_ids=np.array([c.id for c in chunks], dtype=str), chunk_vectors=chunk_vectors,
                 record_ids=np.array(ids, dtype=str),
                 sentence_ids=np.array([s.id for s in sentences], dtype=str), sentence_vectors=sentence_vectors)
        fh.flush()
        os.fsync(fh.fileno())
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
    _fsync_path(gdir)
    _fsync_path(gdir.parent)


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
    for tmp in Path(settings.data_dir).glob("CURRENT.tmp-*"):
        tmp.unlink(missing_ok=True)
    return removed


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
