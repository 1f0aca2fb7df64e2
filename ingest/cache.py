"""Ingest stage helper: each chunk's BM25 tokens (text.tokenize, MeCab), kept with the generation so the next
ingest runs MeCab only on chunks whose text it has not seen.

    tokens.npz   per chunk of the generation, in index order: the key of its text (derived.key) and its tokens
                 (with repeats, in order: BM25 counts them), all in one UTF-8 text, tokens split by US and chunks
                 by RS (text.normalize strips both control characters, so no token holds one; one str.join and
                 one str.split instead of a Python loop per token); and a probe (the tokens of a fixed text when
                 the file was written)

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
VERSION = 2  # 2: one joined text instead of a string table and ids
_TOKEN, _CHUNK = "\x1f", "\x1e"  # ASCII unit and record separators
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
            keys, text = _unkeys(z["keys"]), z["tokens"].tobytes().decode("utf-8")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return {}, f"{FILE} of {gdir.name} is unreadable ({exc})"
    rows = text.split(_CHUNK) if keys else []
    if len(rows) != len(keys):
        return {}, f"{FILE} of {gdir.name} holds {len(rows)} token rows for {len(keys)} keys"
    return {k: row.split(_TOKEN) if row else [] for k, row in zip(keys, rows)}, ""


def write(gdir: Path, tok: Tokenized) -> None:
    """The generation's file (fsynced; the caller fsyncs the directory with the rest of the generation)."""
    text = _CHUNK.join(_TOKEN.join(found) for found in tok.tokens).encode("utf-8")
    with open(gdir / FILE, "wb") as fh:
        np.savez(fh, version=np.int64(VERSION), probe=_strings(tokenize(PROBE)), keys=_keys(tok.keys),
                 tokens=np.frombuffer(text, np.uint8))
        fh.flush()
        os.fsync(fh.fileno())
