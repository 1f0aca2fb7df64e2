"""Vectors shared by generations: per kind (chunk, sentence) and language one append-only file of float32 rows,
and per generation the row each of its chunks and sentences reads (layout: index.py).

    vectors/<kind>-<lang>-<gen>.f32   raw rows of `dim` float32, no header (appending never rewrites one);
                                      <gen>: the generation that started the file
    generations/<gen>/vectors.npz     per chunk and per sentence, in index order: which file (an index into
                                      `files`) and which row; and each chunk's Chroma record hash
    meta.json "vectors"               {"dim", "files": {file: rows this generation relies on}}

Why: the old vectors.npz held every vector of its generation, so a one-sentence edit at 100k chunks read and
wrote 753 MB, and the two live generations held two copies (the data dir at 1.7x). Now an edit appends the
vectors of its new texts to the files and writes only the row lists (a few MB); unchanged texts keep their row.
A file is only appended to past the rows the current generation relies on, and meta.json (written last) records
the new count, so a killed ingest leaves at most rows nobody reads, cut off by the next ingest (`extend`). When a
file's dead rows (those no later generation reads: replaced texts) pass REWRITE_AT of its live ones, that
ingest starts a new file with exactly its rows; the old file goes when no live generation names it.

The query side memory-maps the files read-only (np.memmap): several processes on one host share the pages, and
nothing is copied per language. A generation's sentences of one language are the rows of its file in the order
`by_file` gives; the dead rows are skipped after the product (`LiveRows`), which costs what scanning them costs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A new file once its dead rows pass this share of the live ones (and the floor, so a small kb is not rewritten
# on every edit): bounds the disk and the dead rows a query multiplies.
REWRITE_AT, REWRITE_FLOOR = 0.05, 512


def file_name(kind: str, lang: str, gen: str) -> str:
    return f"{kind}-{lang}-{gen}.f32"


def open_rows(root: Path, name: str, rows: int, dim: int) -> np.ndarray:
    """The first `rows` rows of a store file, memory-mapped read-only (an empty array for none)."""
    if rows == 0:
        return np.zeros((0, dim), np.float32)
    return np.memmap(root / name, dtype=np.float32, mode="r", shape=(rows, dim))


def extend(root: Path, name: str, keep_rows: int, dim: int, vectors: np.ndarray) -> int:
    """Cut the file to `keep_rows` (dropping what a killed ingest appended) and append `vectors`; fsynced.
    Returns the new row count. A new file is started when `keep_rows` is 0."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    with open(path, "r+b" if keep_rows and path.exists() else "wb") as fh:
        fh.truncate(keep_rows * dim * 4)
        fh.seek(0, os.SEEK_END)
        fh.write(np.ascontiguousarray(vectors, np.float32).tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    return keep_rows + len(vectors)


@dataclass(frozen=True)
class LiveRows:
    """A language's sentence matrix as picking sees it (`vectors @ q`): the rows `live` of a store file whose
    other rows are dead. The product runs over the mapped file and keeps the live rows, no copy of the matrix."""
    mm: np.ndarray
    live: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.live), self.mm.shape[1])

    def __len__(self) -> int:
        return len(self.live)

    def __matmul__(self, q):
        return (self.mm @ q)[self.live]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.mm[self.live])
        return out if dtype is None else out.astype(dtype)


@dataclass(frozen=True)
class Vectors:
    """Row i of a generation's vectors (chunks or sentences): files[file_ix[i]][row[i]]."""
    files: tuple[np.ndarray, ...]
    file_ix: np.ndarray  # uint8 or int, per row
    row: np.ndarray  # int64, per row
    dim: int

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.row), self.dim)

    def __len__(self) -> int:
        return len(self.row)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self.files[self.file_ix[i]][self.row[i]]
        return self.take(np.arange(len(self.row))[i])

    def take(self, idx) -> np.ndarray:
        """The rows `idx` as one (len(idx), dim) float32 array (a copy: used for writes, not per query)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.dim), np.float32)
        fx, rx = self.file_ix[idx], self.row[idx]
        for f in np.unique(fx).tolist():
            sel = fx == f
            out[sel] = self.files[f][rx[sel]]
        return out

    def by_file(self):
        """Per file: (the indices of this generation's rows in it, ordered by row; their matrix for `@`). The
        matrix is the mapped file itself when those rows are all of it in order, else a LiveRows."""
        out = {}
        for f in np.unique(self.file_ix).tolist():
            idx = np.flatnonzero(self.file_ix == f)
            order = np.argsort(self.row[idx], kind="stable")
            idx, rows = idx[order], self.row[idx][order]
            mm = self.files[f]
            whole = len(rows) == len(mm) and bool(np.array_equal(rows, np.arange(len(mm))))
            out[f] = (idx, mm if whole else LiveRows(mm, rows))
        return out
