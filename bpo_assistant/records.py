"""A generation's chunk and sentence records, in shards that later generations share (layout: index.py).

    generations/<gen>/records/<NN>.jsonl   one line per document of the shard: {"key", "chunks", "sentences"}
                                           (each record its fields in declaration order), lines by key
    generations/<gen>/records/keys.json    shard -> its document keys (what the next ingest compares)

A document's shard is a hash of its manifest key, so it never moves. An ingest writes only the shards whose
documents changed and hard-links the others from the previous generation: a one-document edit at 100k chunks
wrote 160 MB of chunks.jsonl and sentences.jsonl before, and the two live generations held two copies; now it
writes one shard of SHARDS, and the disk holds one copy of the rest (a hard link is freed with its last name).
A shard file is never changed in place (a new one is written beside it and renamed by the new generation only),
so a linked file an older generation reads stays what it was.

Index order is the documents' keys sorted, each document's records in its order: what ingest assembles, whether
from scratch or from an edit, so both give the same index.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields
from pathlib import Path

from .types import Chunk, Sentence

DIR = "records"
SHARDS = 64


def shard_of(key: str) -> str:
    return f"{hashlib.blake2b(key.encode('utf-8'), digest_size=2).digest()[0] % SHARDS:02d}"


def _encode(records, names) -> list[dict]:
    return [{n: getattr(r, n) for n in names} for r in records]


def write(gdir: Path, docs: dict[str, tuple[list[Chunk], list[Sentence]]], prev: Path | None,
          changed: set[str]) -> dict:
    """Write `docs` (key -> its chunks and sentences) as shards under gdir; a shard none of whose keys is in
    `changed` and whose keys are those of `prev`'s shard is linked from `prev` (a generation directory).
    Returns {"written": n, "linked": n}, for meta.json."""
    out = gdir / DIR
    out.mkdir(parents=True, exist_ok=True)
    by_shard: dict[str, list[str]] = {}
    for key in sorted(docs):
        by_shard.setdefault(shard_of(key), []).append(key)
    old = _shard_keys(prev) if prev is not None else {}
    cn, sn = [f.name for f in fields(Chunk)], [f.name for f in fields(Sentence)]
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    written = linked = 0
    for shard, keys in sorted(by_shard.items()):
        path = out / f"{shard}.jsonl"
        if prev is not None and old.get(shard) == keys and not changed.intersection(keys):
            os.link(prev / DIR / f"{shard}.jsonl", path)
            linked += 1
            continue
        text = "".join(dumps({"key": k, "chunks": _encode(docs[k][0], cn),
                              "sentences": _encode(docs[k][1], sn)}) + "\n" for k in keys)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        written += 1
    with open(out / "keys.json", "w", encoding="utf-8") as fh:
        fh.write(json.dumps(by_shard, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    return {"shards": len(by_shard), "written": written, "linked": linked}


def _shard_keys(gdir: Path) -> dict[str, list[str]]:
    """shard -> its document keys; empty for a generation without shards (an older layout: nothing to link)."""
    try:
        return json.loads((gdir / DIR / "keys.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_docs(gdir: Path) -> dict[str, tuple[list[Chunk], list[Sentence]]]:
    """key -> (chunks, sentences) of every document of the generation."""
    out = {}
    for path in sorted((gdir / DIR).glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                out[row["key"]] = ([Chunk(**c) for c in row["chunks"]], [Sentence(**s) for s in row["sentences"]])
    return out


def read(gdir: Path) -> tuple[list[Chunk], list[Sentence]]:
    """Every chunk and sentence of the generation, in index order."""
    docs = read_docs(gdir)
    chunks, sentences = [], []
    for key in sorted(docs):
        chunks += docs[key][0]
        sentences += docs[key][1]
    return chunks, sentences
