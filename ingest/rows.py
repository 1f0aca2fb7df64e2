"""Ingest stage: place every chunk and sentence vector of the new generation in the shared store
(bpo_assistant/vecstore.py says why the store is append-only and shared).

A text the previous generation embedded keeps its row (the same record's own row first, then any row of that
text in its language), so an edit appends only the vectors of its new texts. Per kind and language the rows go
to the file the previous generation read, cut to what it relied on, unless that file would then hold more dead
rows than vecstore.REWRITE_AT of the live ones: then this generation starts a file with exactly its rows, in
index order (also for a first ingest, `--rebuild`, another embedder or a file gone missing). Written before
meta.json names the counts: a killed run leaves rows past them, which the next run cuts off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpo_assistant import vecstore
from bpo_assistant.settings import Settings

KINDS = ("chunks", "sentences")


@dataclass(frozen=True)
class Prior:
    """The previous generation's rows by what they hold: (kind, id, text) and (kind, lang, text) -> (file, row);
    `files`: file -> (rows it relied on, its mapped rows). Empty for a first ingest or an older layout."""
    by_id: dict
    by_text: dict
    files: dict


NO_PRIOR = Prior({}, {}, {})


def prior(settings: Settings, gdir: Path, meta: dict, chunks, sentences, texts: dict) -> Prior:
    """`texts`: kind -> the texts embedded for `chunks` / `sentences` (the previous generation's, index order)."""
    info = meta.get("vectors")
    if not info:
        return NO_PRIOR
    root, dim = settings.data_path("vectors"), int(info["dim"])
    files = {}
    for name, rows in info["files"].items():
        path = root / name
        if path.exists() and path.stat().st_size >= rows * dim * 4:  # a file cut short serves nothing
            files[name] = (rows, vecstore.open_rows(root, name, rows, dim))
    by_id, by_text = {}, {}
    with np.load(gdir / "vectors.npz") as z:
        names = z["files"].tolist()
        for kind, records in (("chunks", chunks), ("sentences", sentences)):
            fx, rx = z[f"{kind[:-1]}_file"].tolist(), z[f"{kind[:-1]}_row"].tolist()
            for r, t, f, row in zip(records, texts[kind], fx, rx):
                name = names[f]
                if name in files:
                    by_id[(kind, r.id, t)] = (name, row)
                    by_text.setdefault((kind, r.lang, t), (name, row))
    return Prior(by_id, by_text, files)


def find(p: Prior, kind: str, record, text: str):
    return p.by_id.get((kind, record.id, text)) or p.by_text.get((kind, record.lang, text))


def place(settings: Settings, gen: str, p: Prior, dim: int, records: dict, texts: dict, fresh: dict) -> dict:
    """Write the rows of one generation. `records`/`texts`: kind -> records / texts in index order; `fresh`:
    text -> vector for every text `find` does not place. Returns {"files": {name: rows}, "dim", kind: (file
    index per record, row per record), "names": [file names], "rewritten": [files started now]}."""
    root = settings.data_path("vectors")
    names: list[str] = []
    out: dict = {"dim": dim, "files": {}, "rewritten": []}
    for kind in KINDS:
        recs, txts = records[kind], texts[kind]
        fix, rix = np.zeros(len(recs), np.int64), np.zeros(len(recs), np.int64)
        by_lang: dict[str, list[int]] = {}
        for i, r in enumerate(recs):
            by_lang.setdefault(r.lang, []).append(i)
        for lang, items in sorted(by_lang.items()):
            found = [find(p, kind, recs[i], txts[i]) for i in items]
            base = _base(p, kind, lang, found)
            live = {f[1] for f in found if f and f[0] == base}
            rows_before = p.files[base][0] if base else 0
            if base is None or rows_before - len(live) > max(vecstore.REWRITE_FLOOR, vecstore.REWRITE_AT * len(items)):
                base, rows_before = vecstore.file_name(kind, lang, gen), 0
                out["rewritten"].append(base)
                placed = [None] * len(items)
            else:
                placed = [f if f and f[0] == base else None for f in found]
            todo = [j for j, f in enumerate(placed) if f is None]
            vecs = np.empty((len(todo), dim), np.float32)
            for n, j in enumerate(todo):
                f = found[j]
                vecs[n] = p.files[f[0]][1][f[1]] if f else fresh[txts[items[j]]]
            total = vecstore.extend(root, base, rows_before, dim, vecs)
            if base not in names:
                names.append(base)
            for n, j in enumerate(todo):
                placed[j] = (base, rows_before + n)
            for j, i in enumerate(items):
                fix[i], rix[i] = names.index(placed[j][0]), placed[j][1]
            out["files"][base] = total
        out[kind] = (fix, rix)
    out["names"] = names
    return out


def _base(p: Prior, kind: str, lang: str, found: list) -> str | None:
    """The previous generation's file for this kind and language: the one most of its found rows are in."""
    counts: dict[str, int] = {}
    for f in found:
        if f and f[0].startswith(f"{kind}-{lang}-"):
            counts[f[0]] = counts.get(f[0], 0) + 1
    return max(counts, key=counts.get) if counts else None


def save(gdir: Path, placed: dict, record_hashes: list[str]) -> None:
    """The generation's vectors.npz: per chunk and sentence its file and row, per chunk its record hash."""
    import os

    with open(gdir / "vectors.npz", "wb") as fh:
        np.savez(fh, files=np.array(placed["names"], dtype=str),
                 chunk_file=placed["chunks"][0].astype(np.uint16), chunk_row=placed["chunks"][1],
                 sentence_file=placed["sentences"][0].astype(np.uint16), sentence_row=placed["sentences"][1],
                 record_hash=np.array(record_hashes, dtype="S12"))
        fh.flush()
        os.fsync(fh.fileno())


def opened(settings: Settings, placed: dict, kind: str) -> vecstore.Vectors:
    """The rows just placed, mapped, for the Chroma writes and the record hashes."""
    root, dim = settings.data_path("vectors"), placed["dim"]
    files = tuple(vecstore.open_rows(root, n, placed["files"][n], dim) for n in placed["names"])
    return vecstore.Vectors(files, placed[kind][0], placed[kind][1], dim)
