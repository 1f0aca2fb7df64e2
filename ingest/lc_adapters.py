"""The kb as LangChain components, for chains built outside this product (an owner's notebook, another vector
store, a LangChain tutorial pipeline like the eval's peer) that should read the kb exactly as ingest does:

    KbLoader(settings).load()        one Document per kb section, with the ids and titles the index uses
    SentenceSplitter().split_documents(docs)   one Document per sentence, cut where the answer quotes cut

The loader goes through ingest's own file walk and loaders, so it sees the same files with the same limits and
skips the same broken ones (named in `.failed`, never raised: one bad file must not lose the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from bpo_assistant.settings import Settings
from bpo_assistant.text import split_sentences

from .loaders import LoadError, load_file
from .sources import discover


class KbLoader(BaseLoader):
    """kb/ (or explicit paths, as `bpo-assistant ingest PATH…` takes them) as section Documents."""

    def __init__(self, settings: Settings, paths: Sequence[str | Path] | None = None) -> None:
        self.settings = settings
        self.paths = None if paths is None else [str(p) for p in paths]
        self.failed: list[tuple[str, str]] = []  # (path, reason) of every file or folder skipped by the last load

    def lazy_load(self) -> Iterator[Document]:
        sources, self.failed = discover(self.settings, self.paths, {})
        for _key, path in sources:
            try:
                doc = load_file(path, self.settings)
            except LoadError as exc:
                self.failed.append((str(path), str(exc)))
                continue
            for section in doc.sections:
                yield Document(page_content=section.text, id=f"{doc.lang}:{doc.id}#{section.id}", metadata={
                    "doc_id": doc.id, "title": doc.title, "lang": doc.lang, "topic": doc.topic,
                    "section_id": section.id, "section_title": section.title, "source": str(path),
                    "line": section.line})


class SentenceSplitter(TextSplitter):
    """bpo_assistant.text.split_sentences as a TextSplitter: 。！？ and line breaks, never inside 「」 or （）. Length
    settings do not apply (a kb sentence is one fact); split_documents copies each Document's metadata."""

    def __init__(self, **kwargs) -> None:
        super().__init__(chunk_size=kwargs.pop("chunk_size", 10**9), chunk_overlap=kwargs.pop("chunk_overlap", 0),
                         **kwargs)

    def split_text(self, text: str) -> list[str]:
        return split_sentences(text)
