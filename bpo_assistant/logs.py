"""Logging, set up once by the entry points (`cli.main`, `ui.app.serve`), and the one record per answer.

Nothing here runs at import time: `configure_logging(settings)` installs a single stderr handler on the root
logger at BPO_LOG_LEVEL, as text or (BPO_LOG_FORMAT=json) one JSON object per line for a log shipper. Fields given
with `extra=` are part of the line in both formats, so a record is as useful in a terminal as in a log store.

`attach_answer_log(assistant, settings, channel)` registers an observer on `Assistant.observers` that writes one
INFO record per answer to the `bpo_assistant.answers` logger (and, with BPO_OTEL=1, one span per answer; see
tracing.py). It is attached where the question log is (owners/qlog.attach_question_log), which every surface
(chat, API, CLI `ask`, MCP) already calls, and only once per assistant, so each answer is logged exactly once.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from .settings import Settings
from .types import AnswerEvent

ANSWERS = "bpo_assistant.answers"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field of the line
# (except uvicorn's `color_message`, the same message with terminal colour codes).
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One line per record: time (UTC, ISO 8601), level, logger, message, the `extra=` fields, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(extra_fields(record))
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a field that is not JSON (a Path, an exception) must cost the line nothing but precision
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The usual text line with the `extra=` fields appended as key=value (JSON values, so spaces stay unambiguous)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in fields.items())
        return line


class _Handler(logging.StreamHandler):
    """The handler this module installs (a second configure_logging replaces it instead of doubling lines). With no
    stream given it writes to whatever sys.stderr is at the time, like logging's last-resort handler, so a caller
    that swaps stderr (pytest's capture, contextlib.redirect_stderr) never leaves it writing to a closed file."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self):
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        self._fixed = value


def configure_logging(settings: Settings, stream=None) -> logging.Handler:
    """The root logger at BPO_LOG_LEVEL with one stderr handler in BPO_LOG_FORMAT. Safe to call again (the chat's
    serve() after cli.main): the previous handler is replaced. Handlers others installed (pytest's) are kept."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter(TEXT_FORMAT))
    # On the handler too: libraries that set their own logger's level (bm25s: DEBUG) must not bypass the setting.
    handler.setLevel(settings.log_level)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    return handler


def answer_fields(event: AnswerEvent, channel: str, with_question: bool) -> dict[str, Any]:
    """What one answer's record carries. No answer text, no history, no user; the question only when asked."""
    a = event.answer
    fields: dict[str, Any] = {
        "surface": event.channel or channel or "unknown",
        "kind": a.kind,
        "refused": bool(a.refused),
        "reason": a.reason,
        "lang": a.lang or event.lang,
        "topic": event.topic,
        "latency_ms": round(float(event.latency_ms), 1),
        "stages_ms": {k: round(float(v), 1) for k, v in a.timings.items()},
        "generation": event.generation,
        "sections": list(a.sections),
        "confidence": round(float(a.confidence or 0.0), 3),
    }
    if with_question:
        fields["question"] = event.question
    return fields


class AnswerLog:
    """The observer: one INFO record per answer on `bpo_assistant.answers`, and the answer's spans when tracing."""

    def __init__(self, settings: Settings, channel: str = "", tracer=None) -> None:
        self.channel = channel
        self.with_question = settings.log_question_text
        self.tracer = tracer
        self.log = logging.getLogger(ANSWERS)

    def __call__(self, event: AnswerEvent) -> None:
        logging_on = self.log.isEnabledFor(logging.INFO)
        if not logging_on and self.tracer is None:
            return  # the default (WARNING, no OTel): an answer costs one level check
        fields = answer_fields(event, self.channel, self.with_question)
        if logging_on:
            self.log.info("answer", extra=fields)
        if self.tracer is not None:
            self.tracer.record(event, fields)


def attach_answer_log(assistant, settings: Settings, channel: str = "") -> AnswerLog | None:
    """Register the answer log on `assistant` once (a second call returns the registered one). None for a stand-in
    assistant without observers."""
    observers = getattr(assistant, "observers", None)
    if observers is None:
        return None
    for obs in observers:
        if isinstance(obs, AnswerLog):
            return obs
    tracer = None
    if settings.otel:
        from .tracing import make_tracer

        tracer = make_tracer(settings)
    answer_log = AnswerLog(settings, channel, tracer)
    observers.append(answer_log)
    return answer_log
