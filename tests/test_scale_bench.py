"""The scale benchmark's synthetic kb (benchmarks/synthkb.py): valid kb documents of a known chunk count."""

from __future__ import annotations

from bpo_assistant.kbfiles import load_kb_docs
from bpo_assistant.settings import REPO_ROOT, Settings
from benchmarks import synthkb
from bpo_assistant.ingest.chunking import chunk_document


def chunk_ids(kb_dir, s: Settings) -> set[str]:
    docs, errors = load_kb_docs(kb_dir)
    assert errors == []  # every synthetic document passes the full kb/ja contract
    return {c.id for d in docs.values() for c in chunk_document(d, s.chunk_size, s.chunk_overlap_sentences)[0]}


def test_synthetic_kb_has_the_asked_chunks_and_an_edit_changes_one(tmp_path):
    s = Settings()
    kb = synthkb.build(437, tmp_path, s.chunk_size, s.chunk_overlap_sentences, REPO_ROOT)
    assert 0 < kb.real_chunks < 437 and kb.synthetic_docs
    before = chunk_ids(kb.kb_dir, s)
    assert len(before) == kb.expected_chunks == 437
    synthkb.edit_one(kb)
    after = chunk_ids(kb.kb_dir, s)
    assert len(before - after) == len(after - before) == 1  # one chunk's text changed, the rest is reused
