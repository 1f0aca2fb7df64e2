"""SourceDoc -> Chunks (retrieval units) + Sentences (quotable units).

Chunks are packed from whole sentences of one section: answers quote single sentences and cite a section,
so a chunk that crossed a section or cut a sentence could not be cited or quoted exactly. Sentences come
from `kbfiles.section_sentences` (the same splitter and normalisation as the query side and the curated
answers' source hashes), so what is indexed is what is quoted.
"""

from __future__ import annotations

from bpo_assistant.kbfiles import section_sentences
from bpo_assistant.types import Chunk, Sentence, SourceDoc

SEP = "\n"  # one sentence per line: split_sentences(chunk.text) gives the chunk's sentences back


def windows(lengths: list[int], size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) sentence ranges. Each window adds at least one new sentence and starts with up to
    `overlap` whole sentences of the previous window, as many as still fit in `size` characters (so the
    overlap never pushes a chunk over the limit). A sentence longer than `size` is a window of its own."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(lengths)

    def span(a: int, b: int) -> int:
        return sum(lengths[a:b]) + len(SEP) * (b - a - 1)

    while i < n:
        start = i
        if out:
            prev_start = out[-1][0]
            while start > max(prev_start + 1, i - overlap) and span(start - 1, i + 1) <= size:
                start -= 1
        end = i + 1
        while end < n and span(start, end + 1) <= size:
            end += 1
        out.append((start, end))
        i = end
    return out


def chunk_document(doc: SourceDoc, chunk_size: int, overlap: int) -> tuple[list[Chunk], list[Sentence]]:
    chunks: list[Chunk] = []
    sentences: list[Sentence] = []
    seen_sections: set[str] = set()
    for section in doc.sections:
        if section.id in seen_sections:
            # Chunk and sentence ids are built from the section id; a repeat would make two chunks one.
            raise ValueError(f"section id {section.id!r} appears twice in {doc.path}")
        seen_sections.add(section.id)
        sents = section_sentences(section)
        if not sents:
            continue
        owner: list[str | None] = [None] * len(sents)  # first chunk containing each sentence
        for ordinal, (a, b) in enumerate(windows([len(s) for s in sents], chunk_size, overlap)):
            text = SEP.join(sents[a:b])
            chunk = Chunk(
                id=Chunk.make_id(doc.id, doc.lang, section.id, ordinal, text), doc_id=doc.id, title=doc.title,
                lang=doc.lang, topic=doc.topic, section_id=section.id, section_title=section.title,
                ordinal=ordinal, text=text,
            )
            chunks.append(chunk)
            for k in range(a, b):
                owner[k] = owner[k] or chunk.id
        # One record per sentence position, whatever the overlap: quoting must not offer the same line twice.
        for k, sent in enumerate(sents):
            sentences.append(Sentence(
                id=f"{owner[k]}/s{k}", chunk_id=owner[k], doc_id=doc.id, lang=doc.lang, section_id=section.id,
                ordinal=k, text=sent,
            ))
    return chunks, sentences


def embed_text(chunk: Chunk) -> str:
    """What the dense model sees for a chunk: 'title › section' then the text.

    Chunk.text stays clean because it is quoted, shown and BM25-indexed verbatim (a title repeated in every
    chunk would also inflate BM25 term counts). The dense vector, though, should know the context: a
    sentence in the section 'コスト面はどうか' of the vendor-selection document rarely repeats that it is
    about choosing a BPO vendor, and the title path supplies it. Sentences are embedded bare: they are
    written to stand alone (docs/kb-format.md) and are scored against the question one by one.
    """
    return f"{chunk.title} › {chunk.section_title}\n{chunk.text}"
