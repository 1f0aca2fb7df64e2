"""Ingest stage: the MeCab-derived lookups of a generation, computed once here instead of at every start-up.

    derived.npz    noun → documents, the nouns of the question bank, the kb's loanwords, and each sentence's
                   tokens (the word overlap the answer picker scores), as string tables + int arrays (no pickle)

The query process (bpo_assistant/knowledge.py) loads the file when it is there and computes the same values with
`compute` for a generation written before this stage existed, so both paths share one definition. Written by the
`derived` hook of ingest/pipeline.py, before meta.json marks the generation finished: a killed ingest leaves no
half generation behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpo_assistant.text import katakana_words, nouns, tokenize

FILE = "derived.npz"
# Bump when what is computed changes (or text.py's tokenizers do): a file of another version is ignored, and the
# query process computes the lookups itself until the next ingest.
VERSION = 1


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


def compute(chunks, sentences, bank_texts, with_tokens: bool = True) -> Derived:
    """chunks: Chunk records (any order); sentences: Sentence records in index order; bank_texts: the texts of the
    question-bank rows. `with_tokens=False` skips the per-sentence tokens (the query side fills them lazily)."""
    by_noun: dict[str, set[str]] = {}
    for ch in chunks:
        for noun in nouns(ch.text):
            by_noun.setdefault(noun, set()).add(ch.doc_id)
    table: dict[str, int] = {}
    offsets, ids = [0], []
    if with_tokens:
        for s in sentences:
            ids += [table.setdefault(t, len(table)) for t in dict.fromkeys(tokenize(s.text))]
            offsets.append(len(ids))
    return Derived(
        docs_by_noun={k: frozenset(v) for k, v in by_noun.items()},
        bank_nouns=frozenset(n for t in bank_texts for n in nouns(t)),
        loanwords=katakana_words(ch.text for ch in chunks),
        token_table=tuple(table), offsets=np.asarray(offsets, np.int64), token_ids=np.asarray(ids, np.int32),
    )


def bank_texts(gdir: Path) -> list[str]:
    """The bank rows of questions.jsonl (written by the router stage just before this one; absent without rows)."""
    path = gdir / "questions.jsonl"
    if not path.exists():
        return []
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [r["text"] for r in rows if r.get("kind") == "bank"]


def build(gdir: Path, chunks, sentences) -> dict:
    """Compute and write derived.npz into the generation; returns the summary recorded in meta.json."""
    d = compute(chunks, sentences, bank_texts(gdir))
    nouns_sorted = sorted(d.docs_by_noun)
    docs = sorted({doc for v in d.docs_by_noun.values() for doc in v})
    doc_ix = {doc: i for i, doc in enumerate(docs)}
    noun_docs = [sorted(doc_ix[doc] for doc in d.docs_by_noun[n]) for n in nouns_sorted]
    with open(gdir / FILE, "wb") as fh:
        np.savez(fh, version=np.int64(VERSION), sentences=np.int64(len(sentences)),
                 nouns=_strings(nouns_sorted), docs=_strings(docs),
                 noun_offsets=np.cumsum([0] + [len(x) for x in noun_docs], dtype=np.int64),
                 noun_docs=np.asarray([i for x in noun_docs for i in x], np.int32),
                 bank_nouns=_strings(sorted(d.bank_nouns)), loanwords=_strings(sorted(d.loanwords)),
                 token_table=_strings(d.token_table), offsets=d.offsets, token_ids=d.token_ids)
        fh.flush()
        os.fsync(fh.fileno())
    return {"version": VERSION, "nouns": len(nouns_sorted), "tokens": len(d.token_table)}


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
