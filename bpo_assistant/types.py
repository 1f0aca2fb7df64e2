"""Small typed objects shared by ingest, retrieval, answering and the UI.

Ids are derived from content so they are stable across runs (as in haystack's Document): re-ingesting
the same text yields the same ids, and a changed sentence yields a new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

AnswerKind = Literal["extractive", "comparison", "curated", "llm", "refusal", "prompt", "error", "peer"]


def content_hash(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Section:
    id: str  # ASCII id, identical in a document's ja and en twin
    title: str
    text: str
    line: int = 0  # 1-based line of the heading in the source file (for error messages)


@dataclass(frozen=True)
class SourceDoc:
    id: str
    title: str
    lang: str
    topic: str
    path: str
    sections: tuple[Section, ...]
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        body = "\n".join(f"{s.id}\t{s.title}\t{s.text}" for s in self.sections)
        return content_hash(f"{self.id}|{self.title}|{self.lang}|{self.topic}|{body}", 16)


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    title: str
    lang: str
    topic: str
    section_id: str
    section_title: str
    ordinal: int  # position of the chunk inside its section
    text: str

    @staticmethod
    def make_id(doc_id: str, lang: str, section_id: str, ordinal: int, text: str) -> str:
        return f"{lang}:{doc_id}#{section_id}:{ordinal}:{content_hash(text, 10)}"

    @property
    def section_path(self) -> str:
        return f"{self.title} › {self.section_title}"


@dataclass(frozen=True)
class Sentence:
    id: str
    chunk_id: str
    doc_id: str
    lang: str
    section_id: str
    ordinal: int  # position inside the section, used to keep reading order
    text: str


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    section: str  # human section title
    section_id: str
    lang: str
    text: str  # the quoted sentences, joined

    @property
    def label(self) -> str:
        return f"[{self.n}] {self.title} › {self.section}"

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "doc_id": self.doc_id,
            "title": self.title,
            "section": self.section,
            "section_id": self.section_id,
            "lang": self.lang,
            "text": self.text,
        }


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    citations: tuple[int, ...]


@dataclass(frozen=True)
class Answer:
    text: str
    sentences: tuple[AnswerSentence, ...] = ()
    citations: tuple[Citation, ...] = ()
    refused: bool = False
    curated: bool = False
    standalone_query: str = ""
    lang: str = "ja"
    kind: AnswerKind = "extractive"
    notice: str = ""  # e.g. truncated input, Japanese fallback, stale curated answer
    stale: bool = False
    suggestions: tuple[str, ...] = ()
    retrieved: tuple[str, ...] = ()  # chunk ids seen by the composer, for citation validity
    reason: str = ""  # why this answer (which stage, which sections) or why the refusal (which check)
    confidence: float = 0.0  # the router's calibrated probability for what was answered (0 when not routed)
    timings: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def sections(self) -> tuple[str, ...]:
        """"doc#section" of every citation, in citation order: what a follow-up narrows to."""
        return tuple(dict.fromkeys(f"{c.doc_id}#{c.section_id}" for c in self.citations))

    def to_json(self) -> dict:
        return {
            "answer": self.text,
            "refused": self.refused,
            "curated": self.curated,
            "standalone_query": self.standalone_query,
            "citations": [c.to_json() for c in self.citations],
            "latency_ms": round(sum(self.timings.values()), 1),
            "kind": self.kind,
            "lang": self.lang,
            "notice": self.notice,
            "stale": self.stale,
            "suggestions": list(self.suggestions),
            "reason": self.reason,
            "confidence": round(self.confidence, 3),
            "sections": list(self.sections),
            "timings_ms": {k: round(v, 1) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class AnswerEvent:
    """What `Assistant.ask` tells its observers after each answer (the question log, API logging, tracing).

    Carries the routing the answer came from, so an observer never re-runs the query path to explain it."""

    question: str
    lang: str
    topic: str | None
    answer: Answer
    routed: tuple[tuple[str, float], ...]  # the router's top sections ("doc#section", probability)
    latency_ms: float
    generation: str
    channel: str = ""  # "chat", "cli", "api", "mcp", "eval"… as the caller says
    user: str | None = None  # a login name when auth is on; never anything else
    at: float = 0.0  # time.time() when the answer was ready
