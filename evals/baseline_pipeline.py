"""The naive peer pipeline, built the way competing tools do it, scored by the same runner for comparison.

RecursiveCharacterTextSplitter (500 characters, overlap 50) over the kb/ja and kb/en Markdown bodies (front matter
stripped), langchain_chroma.Chroma in a temporary directory with our embedder, dense top-4, the answer is the top
chunks joined, the citations are those chunks' documents, and it never refuses. History is ignored.

Courtesy mapping: such chunks have no section. So that citation_validity measures something, each chunk is
attributed to the section of its document that holds most of its characters (headings located by the same
`## Title {#id}` rule as our parser) and gets an id in our chunk-id format; chunks before the first heading get
section "_" and their citations count as invalid.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

_HEADING = re.compile(r"^##\s+(?P<title>.+?)\s*(?:\{#(?P<id>[A-Za-z0-9_-]+)\})?\s*$", re.MULTILINE)

CHUNK_SIZE = 500
CHUNK_OVERLAP = 50
TOP_K = 4


def section_spans(body: str) -> list[tuple[int, int, str, str]]:
    """(start, end, section_id, section_title) per `## ` section of a body, ids as kbfiles.parse_sections gives."""
    from bpo_assistant.kbfiles import parse_sections

    sections = parse_sections(body)
    starts = [m.start() for m in _HEADING.finditer(body)]
    if len(starts) != len(sections):  # e.g. a body without headings: one "body" section
        return [(0, len(body), s.id, s.title) for s in sections[:1]]
    ends = starts[1:] + [len(body)]
    return [(a, b, s.id, s.title) for a, b, s in zip(starts, ends, sections)]


def attribute(start: int, length: int, spans) -> tuple[str, str]:
    """The (section_id, title) whose span overlaps [start, start+length) most; ('_', '') when none does."""
    best, best_overlap = ("_", ""), 0
    for a, b, sid, title in spans:
        overlap = min(b, start + length) - max(a, start)
        if overlap > best_overlap:
            best, best_overlap = (sid, title), overlap
    return best


def kb_chunks(kb_dir: Path) -> list:
    """LangChain Documents, ids in our chunk-id format, metadata: doc_id, lang, title, section_id, section."""
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from bpo_assistant.kbfiles import KbFormatError, split_front_matter
    from bpo_assistant.types import Chunk

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP,
                                              add_start_index=True)
    docs = []
    for lang in ("ja", "en"):
        for path in sorted((Path(kb_dir) / lang).glob("*.md")):
            try:
                meta, body, _ = split_front_matter(path.read_text(encoding="utf-8"), path)
            except (KbFormatError, OSError, UnicodeDecodeError):
                continue
            doc_id, title = str(meta.get("id") or path.stem), str(meta.get("title") or path.stem)
            spans = section_spans(body)
            for n, piece in enumerate(splitter.create_documents([body])):
                sid, stitle = attribute(piece.metadata.get("start_index", 0), len(piece.page_content), spans)
                cid = Chunk.make_id(doc_id, lang, sid, n, piece.page_content)
                docs.append(Document(id=cid, page_content=piece.page_content, metadata={
                    "chunk_id": cid, "doc_id": doc_id, "lang": lang, "title": title, "section_id": sid,
                    "section": stitle}))
    return docs


class NaivePipeline:
    """`.ask(question, history=()) -> Answer`, like the Assistant."""

    def __init__(self, settings, embedder=None, k: int = TOP_K) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma

        from bpo_assistant.embeddings import make_embedder

        self.k = k
        self._tmp = tempfile.TemporaryDirectory(prefix="naive-chroma-", ignore_cleanup_errors=True)
        client = chromadb.PersistentClient(path=self._tmp.name, settings=ChromaSettings(anonymized_telemetry=False))
        self.store = Chroma(collection_name="naive", embedding_function=embedder or make_embedder(settings.embedder),
                            client=client)
        docs = kb_chunks(Path(settings.kb_dir))
        if not docs:
            raise RuntimeError(f"no kb documents under {settings.kb_dir}")
        self.store.add_documents(docs, ids=[d.id for d in docs])
        self.size = len(docs)

    def ask(self, question: str, history=()):
        from bpo_assistant.text import detect_lang
        from bpo_assistant.types import Answer, Citation

        hits = self.store.similarity_search(question, k=self.k)
        citations = tuple(
            Citation(n=i, doc_id=h.metadata["doc_id"], title=h.metadata["title"], section=h.metadata["section"],
                     section_id=h.metadata["section_id"], lang=h.metadata["lang"], text=h.page_content)
            for i, h in enumerate(hits, 1)
        )
        return Answer(text="\n\n".join(h.page_content for h in hits), citations=citations, refused=False,
                      lang=detect_lang(question), kind="naive", retrieved=tuple(h.metadata["chunk_id"] for h in hits))

    def close(self) -> None:
        self.store = None
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
