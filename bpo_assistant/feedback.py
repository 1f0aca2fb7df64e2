"""User feedback (👍/👎 with a reason) in the shared database, and its export as eval-suite cases for reviewers.

The rows live in the `feedback` table of the owners' database (owners/db.py): SQLite at data_dir/owners.sqlite by
default, PostgreSQL with BPO_DATABASE_URL, so every app replica writes into one table and `make clean` of a host's
data dir no longer takes them. A data_dir/feedback.sqlite left by an earlier version is copied in once on first
start (feedback_migrate.py). Each call takes a pooled connection for one transaction: Gradio runs handlers on
worker threads.

Exported cases follow evals/suite.py: {"id": "feedback-<n>", "question", "lang", "history" (if any),
"expect": {"refuse": false, "doc_ids": [cited doc ids], "facts": []}}. The cited doc ids are only a starting
point: a reviewer fixes them and adds facts before the case joins a suite. An extra "feedback" key carries the
rating, reason and comment for the reviewer (the suite loader keeps unknown top-level keys as `extra`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from .owners.db import database_url, engine_for_url, feedback, safe_url
from .settings import Settings

REASONS = ("wrong_citation", "outdated", "incomplete", "misunderstood", "other")
MAX_TEXT = 20_000
MAX_COMMENT = 2_000


def _clip(text: object, limit: int = MAX_TEXT) -> str:
    return ("" if text is None else str(text))[:limit]


def _citation_dicts(citations: Iterable) -> list[dict]:
    out = []
    for c in citations or ():
        out.append(c.to_json() if hasattr(c, "to_json") else dict(c))
    return out


class FeedbackStore:
    """`FeedbackStore(settings)`: the deployment's table (BPO_DATABASE_URL or data_dir/owners.sqlite), with a
    legacy data_dir/feedback.sqlite migrated in first. `FeedbackStore(path=FILE)`: the same table in a SQLite file
    of its own (tests, tools)."""

    def __init__(self, settings: Settings | None = None, path: Path | str | None = None) -> None:
        if path is not None:
            self.url = f"sqlite:///{Path(path).resolve()}"
        elif settings is not None:
            self.url = database_url(settings)
        else:
            raise ValueError("FeedbackStore needs settings or a path")
        self.engine = engine_for_url(self.url)
        # The file for SQLite (what `journal_mode` and the tests look at); None for a server database.
        self.path = Path(self.url[len("sqlite:///"):]) if self.url.startswith("sqlite:///") else None
        self.migrated = None
        if path is None:
            from .feedback_migrate import migrate_legacy

            self.migrated = migrate_legacy(settings, self.engine)

    def __repr__(self) -> str:
        return f"FeedbackStore({safe_url(self.url)})"

    def journal_mode(self) -> str:
        if self.engine.dialect.name != "sqlite":
            return ""
        with self.engine.connect() as conn:
            return str(conn.execute(text("PRAGMA journal_mode")).scalar()).lower()

    def add(self, *, question: str, answer: str, rating: int, citations: Iterable = (), standalone_query: str = "",
            lang: str = "ja", history: Sequence[dict] = (), reason: str = "", comment: str = "", kind: str = "",
            refused: bool = False, session: str = "", message_index: int | None = None) -> int:
        if rating not in (-1, 1):
            raise ValueError("rating must be 1 (👍) or -1 (👎)")
        reason = reason if reason in REASONS else ""
        now = time.time()
        hist = [{"role": h["role"], "content": _clip(h["content"])} for h in history
                if isinstance(h, dict) and h.get("role") in ("user", "assistant") and isinstance(h.get("content"), str)]
        row = dict(created=now, updated=now, session=_clip(session, 200), message_index=message_index,
                   question=_clip(question), lang=_clip(lang, 8) or "ja", history=json.dumps(hist, ensure_ascii=False),
                   answer=_clip(answer), citations=json.dumps(_citation_dicts(citations), ensure_ascii=False),
                   standalone_query=_clip(standalone_query), kind=_clip(kind, 40), refused=bool(refused),
                   rating=rating, reason=reason, comment=_clip(comment, MAX_COMMENT))
        with self.engine.begin() as conn:
            return int(conn.execute(insert(feedback).values(**row)).inserted_primary_key[0])

    def update(self, row_id: int, *, rating: int | None = None, reason: str | None = None,
               comment: str | None = None) -> bool:
        values: dict = {"updated": time.time()}
        if rating is not None:
            if rating not in (-1, 1):
                raise ValueError("rating must be 1 or -1")
            values["rating"] = rating
        if reason is not None:
            values["reason"] = reason if reason in REASONS else ""
        if comment is not None:
            values["comment"] = _clip(comment, MAX_COMMENT)
        with self.engine.begin() as conn:
            return conn.execute(update(feedback).where(feedback.c.id == int(row_id)).values(**values)).rowcount == 1

    def delete(self, row_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(feedback).where(feedback.c.id == int(row_id))).rowcount == 1

    def get(self, row_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(feedback).where(feedback.c.id == int(row_id))).mappings().first()
        return self._row(row) if row else None

    def rows(self, only_negative: bool = False) -> list[dict]:
        query = select(feedback).order_by(feedback.c.id)
        if only_negative:
            query = query.where(feedback.c.rating < 0)
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query).mappings()]

    @staticmethod
    def _row(row) -> dict:
        d = dict(row)
        d["history"] = json.loads(d["history"] or "[]")
        d["citations"] = json.loads(d["citations"] or "[]")
        d["refused"] = bool(d["refused"])
        return d


def to_case(row: dict) -> dict:
    """One feedback row as an eval-suite case for a reviewer to edit into a regression case."""
    case: dict = {"id": f"feedback-{row['id']}", "question": row["question"], "lang": row.get("lang") or "ja"}
    if row.get("history"):
        case["history"] = row["history"]
    doc_ids: list[str] = []
    for c in row.get("citations") or []:
        doc = c.get("doc_id") if isinstance(c, dict) else None
        if isinstance(doc, str) and doc.strip() and doc not in doc_ids:
            doc_ids.append(doc)
    expect: dict = {"refuse": False}
    if doc_ids:  # the suite loader rejects an empty list ("omit it instead")
        expect["doc_ids"] = doc_ids
    expect["facts"] = []
    case["expect"] = expect
    case["feedback"] = {
        "rating": row["rating"],
        "reason": row.get("reason") or "",
        "comment": row.get("comment") or "",
        "standalone_query": row.get("standalone_query") or "",
        "answer": row.get("answer") or "",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(row.get("created") or 0)),
    }
    return case


def export_cases(store: FeedbackStore, only_negative: bool = False) -> list[dict]:
    return [to_case(r) for r in store.rows(only_negative=only_negative)]


def cli_export(settings: Settings, only_negative: bool = False, out: str | None = None) -> int:
    """`bpo-assistant feedback export [--only-negative] [--out FILE]`: JSONL cases, one per feedback row."""
    try:
        cases = export_cases(FeedbackStore(settings), only_negative=only_negative)
    except SQLAlchemyError as exc:
        print(f"cannot read feedback from {safe_url(database_url(settings))}: {exc.__class__.__name__}: "
              f"{str(exc.orig if getattr(exc, 'orig', None) else exc).splitlines()[0]}", file=sys.stderr)
        return 1
    if not cases:
        print(f"no feedback yet (in {safe_url(database_url(settings))})", file=sys.stderr)
    text_out = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases)
    if out:
        from . import atomic

        atomic.write_text(out, text_out)  # an export may overwrite a suite someone curated by hand
        print(f"wrote {len(cases)} case(s) to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text_out)
    return 0
