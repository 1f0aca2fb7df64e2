"""Ingest stage helper: each chunk's BM25 tokens (text.tokenize, MeCab), kept with the generation so the next
ingest runs MeCab only on chunks whose text it has not seen.

    tokens.npz   per chunk of the generation, in index order: the key of its text (derived.key), its tokens as
                 ids into one string table (with repeats, in order: BM25 counts them), and a probe (the tokens
                 of a fixed text when the file was written)

The file holds exactly the generation's chunks, so it never grows across edits: a key the new generation does
not use is not written again, and cleanup drops the old generation with its file. A file of another VERSION, or
whose probe the tokenizer no longer reproduces (an upgraded fugashi/unidic or a changed text.tokenize), is
ignored and every chunk is tokenized again; the BM25 index built from the tokens is the same either way.
Written before meta.json marks the generation finished (store.write_generation): a killed ingest leaves no
half file any generation reads.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpo_assistant.text import tokenize

from .derived import _keys, _strings, _unkeys, key

FILE = "tokens.npz"
VERSION = 1
# Japanese, a loanword with an English gloss in its lemma, a verb's lemma and Latin words: what a tokenizer or
# dictionary change would move first.
PROBE = "委託先のセキュリティ対策を確認し、BPO vendors are audited yearly."


@dataclass(frozen=True)
class Tokenized:
    """The tokens of each chunk text in order, their keys, and how many came from the previous generation."""
    keys: list[bytes]
    tokens: list[list[str]]
    reused: int
    reason: str  # why nothing was reused, when nothing was ("" otherwise)


def tokenize_chunks(texts: list[str], prev: Path | None) -> Tokenized:
    """text.tokenize of every text; a text whose key is in `prev`'s file (a generation directory) is not parsed
    again, nor one seen earlier in `texts`."""
    cached, reason = read(prev) if prev is not None else ({}, "no previous generation")
    keys = [key(t) for t in texts]
    memo = dict(cached)
    out, reused = [], 0
    for k, t in zip(keys, texts):
        found = memo.get(k)
        if found is None:
            found = memo[k] = tokenize(t)
        elif k in cached:
            reused += 1
        out.append(found)
    return Tokenized(keys, out, reused, "" if reused else reason or "no chunk text was seen before")


def read(gdir: Path) -> tuple[dict[bytes, list[str]], str]:
    """key -> tokens of a generation's file, and why it is empty when it is."""
    path = gdir / FILE
    if not path.exists():
        return {}, f"{gdir.name} has no {FILE}"
    try:
        with np.load(path) as z:
            if int(z["version"]) != VERSION:
                return {}, f"{FILE} of {gdir.name} is version {int(z['version'])}, not {VERSION}"
            if z["probe"].tolist() != tokenize(PROBE):
                return {}, f"the tokenizer no longer gives {FILE} of {gdir.name}'s probe tokens"
            table, off, ids = z["table"].tolist(), z["offsets"].tolist(), z["ids"].tolist()
            keys = _unkeys(z["keys"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return {}, f"{FILE} of {gdir.name} is unreadable ({exc})"
    return {k: [table[j] for j in ids[off[i]:off[i + 1]]] for i, k in enumerate(keys)}, ""


def write(gdir: Path, tok: Tokenized) -> None:
    """The generation's file (fsynced; the caller fsyncs the directory with the rest of the generation)."""
    table: dict[str, int] = {}
    ids = [table.setdefault(t, len(table)) for found in tok.tokens for t in found]
    with open(gdir / FILE, "wb") as fh:
        np.savez(fh, version=np.int64(VERSION), probe=_strings(tokenize(PROBE)), keys=_keys(tok.keys),
                 table=_strings(list(table)), ids=np.asarray(ids, np.int32),
                 offsets=np.cumsum([0] + [len(x) for x in tok.tokens], dtype=np.int64))
        fh.flush()
        os.fsync(fh.fileno())
