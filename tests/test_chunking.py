"""Chunking: whole sentences only, inside one section, within the size, whole-sentence overlap, stable ids,
one sentence record per sentence."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bpo_assistant.kbfiles import load_kb_docs, section_sentences
from bpo_assistant.settings import REPO_ROOT
from bpo_assistant.text import split_sentences
from bpo_assistant.types import Section, SourceDoc
from bpo_assistant.ingest.chunking import SEP, chunk_document, embed_text, windows


def make_doc(sections: dict[str, list[str]], doc_id: str = "d", title: str = "文書") -> SourceDoc:
    return SourceDoc(id=doc_id, title=title, lang="ja", topic="overview", path="/x.md",
                     sections=tuple(Section(sid, f"節{sid}", "\n".join(lines)) for sid, lines in sections.items()))


def sentence(n: int, tag: str) -> str:
    return f"{tag}" + "あ" * max(0, n - len(tag) - 1) + "。"


@pytest.fixture
def doc() -> SourceDoc:
    rng = random.Random(7)
    return make_doc({
        "a": [sentence(rng.randint(10, 90), f"a{i}") for i in range(25)],
        "b": [sentence(30, "b0"), sentence(300, "b1-long"), sentence(30, "b2"), sentence(40, "b3")],
        "c": [sentence(20, "c0")],
    })


def chunk_sentences(chunk) -> list[str]:
    return chunk.text.split(SEP)


def check_invariants(doc: SourceDoc, size: int, overlap: int) -> None:
    chunks, sentences = chunk_document(doc, size, overlap)
    for section in doc.sections:
        sents = section_sentences(section)
        mine = [c for c in chunks if c.section_id == section.id]
        covered: list[int] = []
        prev_range = None
        for c in mine:
            parts = chunk_sentences(c)
            # a run of whole sentences of *this* section, never a piece of one
            start = next(i for i in range(len(sents)) if sents[i : i + len(parts)] == parts)
            assert len(c.text) <= size or len(parts) == 1
            if prev_range is not None:
                shared = prev_range[1] - start
                assert 0 <= shared <= overlap  # overlap is whole sentences, at most `overlap` of them
                assert start + len(parts) > prev_range[1]  # progress: every chunk adds a new sentence
            prev_range = (start, start + len(parts))
            covered += range(*prev_range)
        assert sorted(set(covered)) == list(range(len(sents)))  # nothing dropped
        recs = [s for s in sentences if s.section_id == section.id]
        assert [s.text for s in recs] == sents and [s.ordinal for s in recs] == list(range(len(sents)))
    assert len({c.id for c in chunks}) == len(chunks)
    assert len({s.id for s in sentences}) == len(sentences)


@pytest.mark.parametrize("size,overlap", [(120, 1), (200, 2), (60, 0), (400, 1), (10, 1)])
def test_invariants(doc, size, overlap):
    check_invariants(doc, size, overlap)


def test_invariants_random_docs():
    rng = random.Random(11)
    for trial in range(40):
        doc = make_doc({f"s{k}": [sentence(rng.randint(5, 250), f"{trial}.{k}.{i}") for i in range(rng.randint(1, 30))]
                        for k in range(3)})
        check_invariants(doc, rng.choice([50, 120, 400]), rng.choice([0, 1, 2]))


def test_overlap_repeats_the_last_sentence(doc):
    chunks, _ = chunk_document(doc, 120, 1)
    a = [c for c in chunks if c.section_id == "a"]
    assert len(a) > 3
    overlapped = 0
    for prev, nxt in zip(a, a[1:]):
        last, first = chunk_sentences(prev)[-1], chunk_sentences(nxt)[0]
        if first == last:
            overlapped += 1
        else:  # dropped only when the repeated sentence and the next new one cannot fit together
            assert len(last) + len(SEP) + len(first) > 120
    assert overlapped >= len(a) // 2


def test_long_sentence_is_its_own_chunk_and_not_carried_over(doc):
    chunks, _ = chunk_document(doc, 120, 1)
    b = [chunk_sentences(c) for c in chunks if c.section_id == "b"]
    long = sentence(300, "b1-long")
    assert [long] in b
    assert all(long not in parts for parts in b if parts != [long])


def test_chunks_stay_in_their_section(doc):
    chunks, _ = chunk_document(doc, 10_000, 1)
    assert [c.section_id for c in chunks] == ["a", "b", "c"]  # one per section even when all would fit
    assert chunks[2].text == sentence(20, "c0") and chunks[2].section_title == "節c"


def test_sentences_point_at_the_first_chunk_containing_them(doc):
    chunks, sentences = chunk_document(doc, 120, 1)
    by_id = {c.id: c for c in chunks}
    for s in sentences:
        owner = by_id[s.chunk_id]
        assert s.text in chunk_sentences(owner)
        earlier = [c for c in chunks if c.section_id == s.section_id and c.ordinal < owner.ordinal]
        assert all(s.text not in chunk_sentences(c) for c in earlier)
        assert s.id == f"{s.chunk_id}/s{s.ordinal}"
    assert len(sentences) == sum(len(section_sentences(sec)) for sec in doc.sections)


def test_ids_are_stable_and_follow_the_text(doc):
    first = chunk_document(doc, 120, 1)
    assert chunk_document(doc, 120, 1) == first
    sections = list(doc.sections)
    sections[2] = replace(sections[2], text=sentence(20, "c0-edited"))
    edited = chunk_document(replace(doc, sections=tuple(sections)), 120, 1)
    old_ids = {c.id for c in first[0]}
    new_ids = {c.id for c in edited[0]}
    assert {c.id for c in first[0] if c.section_id != "c"} <= new_ids  # untouched sections keep their ids
    assert old_ids - new_ids == {c.id for c in first[0] if c.section_id == "c"}


def test_duplicate_section_id_is_refused():
    doc = make_doc({"a": ["一文目です。"]})
    doc = replace(doc, sections=doc.sections + doc.sections)
    with pytest.raises(ValueError, match="section id 'a' appears twice"):
        chunk_document(doc, 400, 1)


def test_windows_edge_cases():
    assert windows([], 100, 1) == []
    assert windows([500], 100, 1) == [(0, 1)]
    assert windows([50, 50, 50], 101, 1) == [(0, 2), (1, 3)]
    assert windows([50, 50, 50], 101, 0) == [(0, 2), (2, 3)]
    assert windows([90, 90, 90], 100, 1) == [(0, 1), (1, 2), (2, 3)]  # overlap dropped when it cannot fit


def test_embed_text_carries_title_and_section_but_chunk_text_is_clean(doc):
    chunk = chunk_document(doc, 120, 1)[0][0]
    assert embed_text(chunk) == f"文書 › 節a\n{chunk.text}"
    assert "文書" not in chunk.text


@pytest.mark.skipif(not any((REPO_ROOT / "kb" / "ja").glob("*.md")), reason="kb not written yet")
def test_real_kb_round_trips_through_the_sentence_splitter():
    docs, _ = load_kb_docs(REPO_ROOT / "kb")
    for doc in docs.values():
        chunks, sentences = chunk_document(doc, 400, 1)
        for c in chunks:
            # the query side re-splits chunk text with the same splitter and must get the same sentences
            assert split_sentences(c.text) == chunk_sentences(c)
        assert {s.chunk_id for s in sentences} <= {c.id for c in chunks}
