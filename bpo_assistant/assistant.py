"""The facade: `Assistant.ask` shows the whole query path; each stage lives in the module that owns its logic.

    turn = prepare(...)          guard, language, follow-up rewrite, embedding, routing  (turn.py)
    gate.scope                   a statute or places the kb never names: refused          (gate.py)
    compare.answer               "AとBの違い" from kb/comparisons.yaml                     (compare.py)
    curated.answer               a vetted answer the curated router picks                (curated.py)
    grounded.answer              sections by retrieval + router, gate, quoted sentences   (grounded.py)

The order of STAGES is the product's policy; the last stage always answers or refuses with a reason.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping, Sequence

from . import compare, curated, gate, grounded
from .index import LoadedIndex, current_generation, load_index
from .knowledge import Knowledge, load_knowledge
from .refusal import refuse
from .settings import Settings
from .suggest import suggest
from .turn import prepare
from .types import Answer, AnswerEvent, SourceDoc

log = logging.getLogger(__name__)

class Assistant:
    STAGES = (gate.scope, compare.answer, curated.answer)  # then grounded.answer, which always returns

    def __init__(self, settings: Settings, embedder, index: LoadedIndex) -> None:
        self.settings = settings
        self.embedder = embedder
        self.llm = None
        if settings.llm:
            from .llm import make_llm

            self.llm = make_llm(settings)
        self._lock = threading.Lock()
        # Observers see every answer (question log, API metrics); one that raises is logged, never fails a turn.
        self.observers: list[Callable[[AnswerEvent], None]] = []
        self.kb: Knowledge = load_knowledge(settings, embedder, index)

    @classmethod
    def from_settings(cls, settings: Settings, embedder=None) -> "Assistant":
        from .embeddings import make_embedder

        embedder = embedder or make_embedder(settings.embedder, settings)
        return cls(settings, embedder, load_index(settings, embedder))

    def knowledge(self, force: bool = False) -> Knowledge:
        """The current snapshot; follows a re-ingest (ingest swaps CURRENT and keeps the replaced generation's
        collection until the next ingest). One small file read per call. The thread that notices a new generation
        builds its snapshot outside any lock others wait on: questions arriving meanwhile keep answering from the
        old one, which stays valid, and the new one is swapped in one assignment."""
        kb = self.kb
        if not force and current_generation(self.settings) in (None, kb.generation):
            return kb
        if not self._lock.acquire(blocking=False):
            return kb  # another thread is loading the new generation
        try:
            if force or current_generation(self.settings) != self.kb.generation:
                self.kb = load_knowledge(self.settings, self.embedder, load_index(self.settings, self.embedder))
        finally:
            self._lock.release()
        return self.kb

    def refresh(self) -> bool:
        old = self.kb.generation
        return self.knowledge().generation != old

    # ---- the query path -------------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[Mapping] = (), topic: str | None = None, *,
            channel: str = "", user: str | None = None) -> Answer:
        """`topic` (a kb front-matter topic such as "contracts") limits every source to that topic's documents.
        History turns may carry the earlier answer's structure ({"role": "assistant", "sections": [...]}).
        `channel`/`user` only label the event observers receive."""
        start = time.perf_counter()
        kb = self.knowledge()
        try:
            turn = prepare(question, history, kb.check_topic(topic), kb, self.embedder, self.settings)
            answer = self._answer(turn, kb)
        except Exception as exc:
            from chromadb.errors import NotFoundError  # here, not at import: chromadb takes ~1.7 s to import

            if not isinstance(exc, NotFoundError):
                raise
            # Two ingests finished while this snapshot was in use: its collection is gone. Reload once and retry.
            kb = self.knowledge(force=True)
            turn = prepare(question, history, kb.check_topic(topic), kb, self.embedder, self.settings)
            answer = self._answer(turn, kb)
        if self.observers:
            event = AnswerEvent(question, answer.lang, turn.topic, answer, turn.routed[:3],
                                (time.perf_counter() - start) * 1000, kb.generation or "", channel, user, time.time())
            for observer in list(self.observers):
                try:
                    observer(event)
                except Exception:  # noqa: BLE001 - an observer's bug must not cost the user an answer
                    log.exception("answer observer %r failed", observer)
        return answer

    def _answer(self, turn, kb: Knowledge) -> Answer:
        if turn.stop is not None:
            return turn.stop
        if turn.reason:
            return refuse(turn, kb)
        for stage in self.STAGES:
            if (answer := stage(turn, kb, self.settings)) is not None:
                return answer
        return grounded.answer(turn, kb, self.settings, self.embedder, self.llm)

    def suggest(self, text: str, lang: str | None = None, k: int = 5) -> list[str]:
        """「もしかして」: bank and curated questions nearest to what is being typed."""
        return suggest(self.knowledge(), self.embedder, text, lang, k)

    # ---- views used by the UI, evals and tests ----------------------------------------------------
    @property
    def index(self) -> LoadedIndex:
        return self.kb.index

    @property
    def retriever(self):
        return self.kb.retriever

    @property
    def curated(self):
        return list(self.kb.curated)

    def topics(self) -> list[str]:
        return self.kb.topics()

    def section(self, lang: str, doc_id: str, section_id: str) -> tuple[str, str, str]:
        """(document title, section title, section text) from the index."""
        return self.kb.section(lang, doc_id, section_id)

    def section_text(self, lang: str, doc_id: str, section_id: str) -> str:
        return self.section(lang, doc_id, section_id)[2]

    def curated_answers(self):
        return list(self.kb.curated)

    def comparison_markdown(self, lang: str) -> str:
        table = next((t for t in self.kb.tables if t.id == "concepts"), None)
        if table is None:
            return ""
        cols = [c for c in table.columns if c["id"] != "outsourcing"] or table.columns
        return compare.render(table, cols, lang, self.section)[0]

    def documents(self, lang: str) -> list[SourceDoc]:
        return sorted((d for (lg, _), d in self.kb.kb_docs.items() if lg == lang), key=lambda d: d.id)
