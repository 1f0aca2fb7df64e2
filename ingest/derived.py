"""Ingest stage: the MeCab-derived lookups of a generation, computed once here instead of at every start-up.

    derived.npz    noun → documents, the nouns of the question bank, the kb's loanwords, and each sentence's
                   tokens (the word overlap the answer picker scores), as string tables + int arrays (no pickle);
                   also each chunk's and bank row's nouns (ids into the noun tables) and a key per chunk, bank
                   row and sentence (a hash of its text), so the next ingest reuses them by exact text and runs
                   MeCab only on the texts it has not seen (`build`'s `prev`: the previous generation's directory)

The query process (bpo_assistant/knowledge.py) loads the file when it is there and computes the same values with
`compute` for a generation written before this stage existed, so both paths share one definition. Written by the
`derived` hook of ingest/pipeline.py, before meta.json marks the generation finished: a killed ingest leaves no
half generation behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpo_assistant.text import katakana_words, nouns, tokenize

FILE = "derived.npz"
# Bump when what is computed changes (or text.py's tokenizers do): a file of another version is ignored, and the
# query process computes the lookups itself until the next ingest.
VERSION = 2  # 2: per-chunk, per-bank-row nouns and per-text keys (the next ingest's cache)

KEY_BYTES = 16  # blake2b digest of a text's UTF-8: the cache key, stored as a (n, 16) uint8 array


@dataclass(frozen=True)
class Cache:
    """MeCab results of earlier texts, by `key(text)`: a sentence's tokens (deduplicated, in order of first
    occurrence) and a chunk's or bank row's nouns (likewise). `read_cache` reads it from a generation's file."""
    tokens: dict[bytes, tuple[str, ...]]
    nouns: dict[bytes, tuple[str, ...]]


def key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


@dataclass(frozen=True)
class Derived:
    docs_by_noun: dict[str, frozenset[str]]
    bank_nouns: frozenset[str]  # nouns of the question bank's own rows (kind "bank"), for the gate's vocabulary
    loanwords: frozenset[str]
    # Sentence i's tokens are token_table[token_ids[offsets[i]:offsets[i + 1]]]; Knowledge makes the frozenset on
    # first use, so loading stays one np.load whatever the kb's size.
    token_table: tuple[str, ...]
    offsets: np.ndarray  # int64, len(sentences) + 1
    token_ids: np.ndarray  # int32

    def sentence_tokens(self, i: int) -> frozenset[str]:
        table = self.token_table
        return frozenset(table[j] for j in self.token_ids[self.offsets[i]:self.offsets[i + 1]].tolist())


def compute(chunks, sentences, bank_texts, with_tokens: bool = True, cache: Cache | None = None) -> Derived:
    """chunks: Chunk records (any order); sentences: Sentence records in index order; bank_texts: the texts of the
    question-bank rows. `with_tokens=False` skips the per-sentence tokens (the query side fills them lazily).
    `cache`: MeCab runs only on the chunk, bank-row and sentence texts whose key it lacks; the result is the same."""
    return _compute(chunks, sentences, bank_texts, with_tokens, cache, keyed=cache is not None)[0]


def _compute(chunks, sentences, bank_texts, with_tokens, cache, keyed):
    """The Derived, and (when keyed) the keys and nouns of the chunks and of the bank rows, and the sentences' keys:
    what the next ingest's cache is made of."""
    chunks = list(chunks)
    chunk_keys, chunk_nouns = _each(nouns, [ch.text for ch in chunks], cache.nouns if cache else {}, keyed)
    bank_keys, bank_found = _each(nouns, list(bank_texts), cache.nouns if cache else {}, keyed)
    by_noun: dict[str, set[str]] = {}
    for ch, found in zip(chunks, chunk_nouns):
        for noun in found:
            by_noun.setdefault(noun, set()).add(ch.doc_id)
    table: dict[str, int] = {}
    offsets, ids, sentence_keys = [0], [], []
    if with_tokens:
        sentence_keys, sentence_tokens = _each(tokenize, [s.text for s in sentences], cache.tokens if cache else {},
                                               keyed)
        for found in sentence_tokens:
            ids += [table.setdefault(t, len(table)) for t in found]
            offsets.append(len(ids))
    d = Derived(
        docs_by_noun={k: frozenset(v) for k, v in by_noun.items()},
        bank_nouns=frozenset(n for found in bank_found for n in found),
        loanwords=katakana_words(ch.text for ch in chunks),
        token_table=tuple(table), offsets=np.asarray(offsets, np.int64), token_ids=np.asarray(ids, np.int32),
    )
    return d, (chunk_keys, chunk_nouns), (bank_keys, bank_found), sentence_keys


def _each(fn, texts: list[str], cached: dict, keyed: bool) -> tuple[list[bytes], list[tuple[str, ...]]]:
    """fn's words of each text, deduplicated in order of first occurrence; fn runs once per text not in `cached`
    (by key) nor seen earlier in `texts`. Returns the keys too when `keyed`."""
    keys = [key(t) for t in texts] if keyed else list(texts)
    memo: dict = dict(cached) if keyed else {}
    out = []
    for k, t in zip(keys, texts):
        found = memo.get(k)
        if found is None:
            found = memo[k] = tuple(dict.fromkeys(fn(t)))
        out.append(found)
    return (keys if keyed else []), out


def bank_texts(gdir: Path) -> list[str]:
    """The bank rows of questions.jsonl (written by the router stage just before this one; absent without rows)."""
    path = gdir / "questions.jsonl"
    if not path.exists():
        return []
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [r["text"] for r in rows if r.get("kind") == "bank"]


def build(gdir: Path, chunks, sentences, prev: Path | None = None) -> dict:
    """Compute and write derived.npz into the generation; returns the summary recorded in meta.json. `prev`: the
    previous generation's directory, whose file (of this version) supplies the MeCab results of unchanged texts."""
    cache = read_cache(prev, sentences=False) if prev is not None else None
    d, (chunk_keys, chunk_nouns), (bank_keys, bank_found), _ = _compute(
        chunks, [], bank_texts(gdir), False, cache, keyed=True)
    sentence_keys, table, offsets, token_ids, reused = _sentence_tokens([s.text for s in sentences], prev)
    d = dataclasses.replace(d, token_table=table, offsets=offsets, token_ids=token_ids)
    nouns_sorted, bank_sorted = sorted(d.docs_by_noun), sorted(d.bank_nouns)
    noun_ix, bank_ix = {n: i for i, n in enumerate(nouns_sorted)}, {n: i for i, n in enumerate(bank_sorted)}
    docs = sorted({doc for v in d.docs_by_noun.values() for doc in v})
    doc_ix = {doc: i for i, doc in enumerate(docs)}
    noun_docs = [sorted(doc_ix[doc] for doc in d.docs_by_noun[n]) for n in nouns_sorted]
    with open(gdir / FILE, "wb") as fh:
        np.savez(fh, version=np.int64(VERSION), sentences=np.int64(len(sentences)),
                 nouns=_strings(nouns_sorted), docs=_strings(docs),
                 noun_offsets=np.cumsum([0] + [len(x) for x in noun_docs], dtype=np.int64),
                 noun_docs=np.asarray([i for x in noun_docs for i in x], np.int32),
                 bank_nouns=_strings(bank_sorted), loanwords=_strings(sorted(d.loanwords)),
                 token_table=_strings(d.token_table), offsets=d.offsets, token_ids=d.token_ids,
                 chunk_keys=_keys(chunk_keys),
                 chunk_noun_offsets=np.cumsum([0] + [len(x) for x in chunk_nouns], dtype=np.int64),
                 chunk_noun_ids=np.asarray([noun_ix[n] for x in chunk_nouns for n in x], np.int32),
                 bank_keys=_keys(bank_keys),
                 bank_noun_offsets=np.cumsum([0] + [len(x) for x in bank_found], dtype=np.int64),
                 bank_noun_ids=np.asarray([bank_ix[n] for x in bank_found for n in x], np.int32),
                 sentence_keys=_keys(sentence_keys))
        fh.flush()
        os.fsync(fh.fileno())
    reused += sum(k in cache.nouns for k in chunk_keys + bank_keys) if cache else 0
    return {"version": VERSION, "nouns": len(nouns_sorted), "tokens": len(d.token_table), "reused": reused}



def _sentence_tokens(texts: list[str], prev: Path | None):
    """What `_compute` gives for the sentences (their keys, the token table in order of first occurrence, offsets,
    token ids) and how many came from `prev`'s file, without a Python loop per token: at 100k chunks the 300k
    sentences' 1.5M tokens were 60 % of this stage. An unchanged sentence's row is sliced out of `prev`'s token
    ids; only new texts run MeCab; one np.unique puts the table in first-occurrence order, as a scratch build."""
    keys = [key(t) for t in texts]
    ptable, poff, pids, where = [], np.zeros(1, np.int64), np.zeros(0, np.int64), {}
    path = prev / FILE if prev is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            if int(z["version"]) == VERSION:
                ptable, poff, pids = z["token_table"].tolist(), z["offsets"], z["token_ids"].astype(np.int64)
                where = {k: i for i, k in enumerate(_unkeys(z["sentence_keys"]))}
    table, index = list(ptable), None
    extra: list[int] = []  # token ids (in `table`) of the sentences prev lacks, appended after pids
    memo: dict[bytes, tuple[int, int]] = {}
    starts, lens = np.zeros(len(texts), np.int64), np.zeros(len(texts), np.int64)
    reused = 0
    for j, (k, t) in enumerate(zip(keys, texts)):
        i = where.get(k)
        if i is not None:
            starts[j], lens[j] = poff[i], poff[i + 1] - poff[i]
            reused += 1
            continue
        if k not in memo:
            if index is None:
                index = {w: n for n, w in enumerate(table)}
            found = []
            for w in dict.fromkeys(tokenize(t)):
                if w not in index:
                    index[w] = len(table)
                    table.append(w)
                found.append(index[w])
            memo[k] = (len(pids) + len(extra), len(found))
            extra += found
        starts[j], lens[j] = memo[k]
    source = np.concatenate([pids, np.asarray(extra, np.int64)])
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    flat = source[np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])]
    uniq, first = np.unique(flat, return_index=True)
    order = uniq[np.argsort(first, kind="stable")]
    rank = np.zeros(len(table), np.int64)
    rank[order] = np.arange(len(order))
    return keys, tuple(table[i] for i in order.tolist()), offsets, rank[flat].astype(np.int32), reused


def read_cache(gdir: Path, sentences: bool = True) -> Cache | None:
    """The MeCab results stored in a generation's derived.npz by text key; None when it is missing or of another
    version (a full compute then). `sentences=False`: the chunk and bank-row nouns only (build reads the
    sentences' tokens as arrays)."""
    path = gdir / FILE
    if not path.exists():
        return None
    with np.load(path) as z:
        if int(z["version"]) != VERSION:
            return None
        nouns_, table = z["nouns"].tolist(), z["token_table"].tolist()
        chunk_keys, sentence_keys = _unkeys(z["chunk_keys"]), _unkeys(z["sentence_keys"])
        off, ix = z["chunk_noun_offsets"].tolist(), z["chunk_noun_ids"].tolist()
        by_text = {k: tuple(nouns_[j] for j in ix[off[i]:off[i + 1]]) for i, k in enumerate(chunk_keys)}
        bank, off, ix = z["bank_nouns"].tolist(), z["bank_noun_offsets"].tolist(), z["bank_noun_ids"].tolist()
        bank_keys = _unkeys(z["bank_keys"])
        by_text.update((k, tuple(bank[j] for j in ix[off[i]:off[i + 1]])) for i, k in enumerate(bank_keys))
        by_sentence = {}
        if sentences:
            off, ix = z["offsets"].tolist(), z["token_ids"].tolist()
            by_sentence = {k: tuple(table[j] for j in ix[off[i]:off[i + 1]]) for i, k in enumerate(sentence_keys)}
    return Cache(tokens=by_sentence, nouns=by_text)


def load(gdir: Path, sentences: int) -> Derived | None:
    """The generation's derived.npz, or None when it is missing, of another version or for another sentence count
    (the caller then computes)."""
    path = gdir / FILE
    if not path.exists():
        return None
    with np.load(path) as z:
        if int(z["version"]) != VERSION or int(z["sentences"]) != sentences:
            return None
        nouns_, docs = z["nouns"].tolist(), z["docs"].tolist()
        off, ix = z["noun_offsets"].tolist(), z["noun_docs"].tolist()
        return Derived(
            docs_by_noun={n: frozenset(docs[j] for j in ix[off[k]:off[k + 1]]) for k, n in enumerate(nouns_)},
            bank_nouns=frozenset(z["bank_nouns"].tolist()), loanwords=frozenset(z["loanwords"].tolist()),
            token_table=tuple(z["token_table"].tolist()), offsets=z["offsets"], token_ids=z["token_ids"],
        )


def _strings(values) -> np.ndarray:
    # A plain unicode array (np.load then needs no pickle); an empty one still has a string dtype.
    return np.array(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def _keys(keys: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), KEY_BYTES)


def _unkeys(arr: np.ndarray) -> list[bytes]:
    raw = np.ascontiguousarray(arr, np.uint8).tobytes()
    return [raw[i:i + KEY_BYTES] for i in range(0, len(raw), KEY_BYTES)]
