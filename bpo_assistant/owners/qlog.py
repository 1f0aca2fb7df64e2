"""The question log: every answered question (chat, CLI `ask`, API) as one row, for triage and KPIs.

`attach_question_log(assistant, settings, channel=…)` registers an observer on `Assistant.observers`. The
observer only turns the AnswerEvent into a row and puts it on a queue; a daemon thread writes it, so the answer
never waits for the database (README "Knowledge owners" has the measured overhead). `close()` drains the queue:
the CLI calls it before exiting, the chat at interpreter exit.

Stored: time, question, language, topic filter, channel, answer kind, refusal/answer reason, router confidence,
the router's top-3 sections, cited sections, latency, index generation, and the login name only when a login is
configured (BPO_AUTH_FILE). Rows older than BPO_LOG_DAYS are purged on start and then daily.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
import time
import unicodedata

from sqlalchemy import delete, select, update

from ..settings import Settings
from ..types import AnswerEvent
from ..embeddings import clean_text  # noqa: I001
from .db import engine_for, questions

log = logging.getLogger(__name__)

DAY = 86_400.0
MAX_QUESTION = 4_000
_STOP = object()


def row_of(event: AnswerEvent, channel: str, keep_user: bool) -> dict:
    a = event.answer
    return {
        "at": event.at or time.time(),
        "question": clean_text(event.question or "")[:MAX_QUESTION],  # as typed, minus what SQL cannot encode
        "lang": (a.lang or event.lang or "ja")[:8],
        "topic": (event.topic or None),
        "channel": (event.channel or channel)[:16],
        "kind": (a.kind or "")[:16],
        "refused": bool(a.refused),
        "reason": a.reason or "",
        "confidence": float(a.confidence or 0.0),
        "routed": json.dumps([[s, round(float(p), 4)] for s, p in event.routed[:3]], ensure_ascii=False),
        "cited": json.dumps(list(a.sections), ensure_ascii=False),
        "latency_ms": round(float(event.latency_ms), 2),
        "generation": (event.generation or "")[:64],
        "user": (event.user or None) if keep_user else None,
    }


class QuestionLog:
    def __init__(self, settings: Settings, channel: str = "") -> None:
        self.settings = settings
        self.channel = channel
        self.engine = engine_for(settings)
        # A name is only worth keeping when it is a login; otherwise whatever a caller passes is dropped.
        self.keep_user = settings.auth_file is not None
        self._queue: queue.Queue = queue.Queue(maxsize=10_000)
        self._last_purge = 0.0
        self._thread = threading.Thread(target=self._run, name="question-log", daemon=True)
        self.purge()
        self._thread.start()

    # The observer: runs on the answering thread, so it only enqueues.
    def __call__(self, event: AnswerEvent) -> None:
        try:
            self._queue.put_nowait(row_of(event, self.channel, self.keep_user))
        except queue.Full:  # the database is stuck; losing a log row beats blocking the chat
            log.warning("question log queue full; row dropped")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.task_done()
                return
            batch = [item]
            while len(batch) < 200:  # a burst becomes one transaction
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    self._queue.task_done()
                    break
                batch.append(nxt)
            try:
                with self.engine.begin() as conn:
                    conn.execute(questions.insert(), batch)
                if time.time() - self._last_purge > DAY:
                    self.purge()
            except Exception:  # noqa: BLE001 - the log must never take the assistant down
                log.exception("question log write failed (%d rows lost)", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

    def purge(self) -> int:
        self._last_purge = time.time()
        return purge(self.settings)


def purge(settings: Settings, now: float | None = None) -> int:
    """Delete rows older than BPO_LOG_DAYS; returns how many went."""
    cutoff = (now or time.time()) - max(0, settings.log_days) * DAY
    with engine_for(settings).begin() as conn:
        return conn.execute(delete(questions).where(questions.c.at < cutoff)).rowcount or 0


def attach_question_log(assistant, settings: Settings, channel: str = "") -> QuestionLog | None:
    """Register the question log on `assistant` (once: a second call returns the registered log). `channel`
    labels events whose caller did not name one. None when BPO_LOG_QUESTIONS=false."""
    from ..logs import attach_answer_log

    attach_answer_log(assistant, settings, channel)  # every surface attaches here: one log record per answer
    observers = getattr(assistant, "observers", None)
    if not settings.log_questions or observers is None:  # None: a stand-in assistant (UI tests) has no seam
        return None
    for obs in observers:
        if isinstance(obs, QuestionLog):
            return obs
    qlog = QuestionLog(settings, channel)
    observers.append(qlog)
    atexit.register(qlog.close)
    return qlog


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip().lower()


def link_feedback(settings: Settings, window_s: float = DAY) -> int:
    """Copy 👍/👎 from the feedback store onto the log row it rates: the latest row with the same question and
    language asked before the rating (within `window_s`). The chat's feedback row carries no log id, so the
    question text and time are the link. Returns the number of rows updated.

    A 👍/👎 withdrawn in the chat (the thumb clicked again) deletes its feedback row; a log row still pointing at
    a row that is gone loses its rating here, or it would stay 👎 in the triage queue and the KPIs for good. The
    store's ids are AUTOINCREMENT, so a deleted id never comes back as another rating."""
    from ..feedback import FeedbackStore

    rated = FeedbackStore(settings).rows()
    engine = engine_for(settings)
    with engine.begin() as conn:
        alive = {r["id"] for r in rated}
        linked = conn.execute(select(questions.c.id, questions.c.feedback_id)
                              .where(questions.c.feedback_id.is_not(None))).all()
        gone = [r.id for r in linked if r.feedback_id not in alive]
        if gone:
            conn.execute(update(questions).where(questions.c.id.in_(gone)).values(feedback_id=None, rating=None))
    if not rated:
        return len(gone)
    since = min(r["created"] for r in rated) - window_s
    with engine.begin() as conn:
        rows = conn.execute(select(questions.c.id, questions.c.at, questions.c.question, questions.c.lang,
                                   questions.c.feedback_id, questions.c.rating)
                            .where(questions.c.at >= since).order_by(questions.c.at)).all()
        by_key: dict[tuple[str, str], list] = {}
        for r in rows:
            by_key.setdefault((_key(r.question), r.lang), []).append(r)
        changed = 0
        for fb in rated:
            cands = [r for r in by_key.get((_key(fb["question"]), fb["lang"]), [])
                     if fb["created"] - window_s <= r.at <= fb["created"] + 5]
            if not cands:
                continue
            target = cands[-1]
            if target.feedback_id != fb["id"] or target.rating != fb["rating"]:
                conn.execute(update(questions).where(questions.c.id == target.id)
                             .values(feedback_id=fb["id"], rating=fb["rating"]))
                changed += 1
    return changed + len(gone)
