"""User feedback (👍/👎 with a reason) in SQLite, and its export as eval-suite cases for reviewers.

The store lives at data_dir/feedback.sqlite in WAL mode, so the chat can write while `bpo-assistant feedback
export` reads. Each call opens its own short-lived connection: Gradio runs handlers on worker threads.

Exported cases follow evals/suite.py: {"id": "feedback-<n>", "question", "lang", "history" (if any),
"expect": {"refuse": false, "doc_ids": [cited doc ids], "facts": []}}. The cited doc ids are only a starting
point: a reviewer fixes them and adds facts before the case joins a suite. An extra "feedback" key carries the
rating, reason and comment for the reviewer (the suite loader keeps unknown top-level keys as `extra`).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

from .settings import Settings

REASONS = ("wrong_citation", "outdated", "incomplete", "misunderstood", "other")
MAX_TEXT = 20_000
MAX_COMMENT = 2_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    session TEXT NOT NULL DEFAULT '',
    message_index INTEGER,
    question TEXT NOT NULL,
    lang TEXT NOT NULL DEFAULT 'ja',
    history TEXT NOT NULL DEFAULT '[]',
    answer TEXT NOT NULL DEFAULT '',
    citations TEXT NOT NULL DEFAULT '[]',
    standalone_query TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '',
    refused INTEGER NOT NULL DEFAULT 0,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    reason TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS feedback_rating ON feedback(rating);
"""


def _clip(text: object, limit: int = MAX_TEXT) -> str:
    return ("" if text is None else str(text))[:limit]


def _citation_dicts(citations: Iterable) -> list[dict]:
    out = []
    for c in citations or ():
        out.append(c.to_json() if hasattr(c, "to_json") else dict(c))
    return out


class FeedbackStore:
    def __init__(self, settings: Settings | None = None, path: Path | str | None = None) -> None:
        if path is None:
            if settings is None:
                raise ValueError("FeedbackStore needs settings or a path")
            path = settings.data_path("feedback.sqlite")
        self.path = Path(path)
        self._ready = False
        # Switching to WAL takes an exclusive lock and SQLite does not run the busy handler for it, so two
        # Gradio worker threads creating the store at once got "database is locked" (seen in CI): the first
        # connection sets the file up while the others wait here.
        self._init_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            with self._init_lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with closing(self._open()) as conn:
                        conn.execute("PRAGMA journal_mode=WAL")
                        conn.executescript(_SCHEMA)
                        conn.commit()
                    self._ready = True
        return self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def journal_mode(self) -> str:
        with closing(self._connect()) as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def add(self, *, question: str, answer: str, rating: int, citations: Iterable = (), standalone_query: str = "",
            lang: str = "ja", history: Sequence[dict] = (), reason: str = "", comment: str = "", kind: str = "",
            refused: bool = False, session: str = "", message_index: int | None = None) -> int:
        if rating not in (-1, 1):
            raise ValueError("rating must be 1 (👍) or -1 (👎)")
        reason = reason if reason in REASONS else ""
        now = time.time()
        hist = [{"role": h["role"], "content": _clip(h["content"])} for h in history
                if isinstance(h, dict) and h.get("role") in ("user", "assistant") and isinstance(h.get("content"), str)]
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                "INSERT INTO feedback (created, updated, session, message_index, question, lang, history, answer,"
                " citations, standalone_query, kind, refused, rating, reason, comment)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, now, _clip(session, 200), message_index, _clip(question), _clip(lang, 8) or "ja",
                 json.dumps(hist, ensure_ascii=False), _clip(answer),
                 json.dumps(_citation_dicts(citations), ensure_ascii=False), _clip(standalone_query),
                 _clip(kind, 40), int(bool(refused)), rating, reason, _clip(comment, MAX_COMMENT)),
            )
            return int(cur.lastrowid)

    def update(self, row_id: int, *, rating: int | None = None, reason: str | None = None,
               comment: str | None = None) -> bool:
        sets, args = ["updated = ?"], [time.time()]
        if rating is not None:
            if rating not in (-1, 1):
                raise ValueError("rating must be 1 or -1")
            sets.append("rating = ?")
            args.append(rating)
        if reason is not None:
            sets.append("reason = ?")
            args.append(reason if reason in REASONS else "")
        if comment is not None:
            sets.append("comment = ?")
            args.append(_clip(comment, MAX_COMMENT))
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(f"UPDATE feedback SET {', '.join(sets)} WHERE id = ?", (*args, int(row_id)))
            return cur.rowcount == 1

    def delete(self, row_id: int) -> bool:
        with closing(self._connect()) as conn, conn:
            return conn.execute("DELETE FROM feedback WHERE id = ?", (int(row_id),)).rowcount == 1

    def get(self, row_id: int) -> dict | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT * FROM feedback WHERE id = ?", (int(row_id),)).fetchone()
        return self._row(row) if row else None

    def rows(self, only_negative: bool = False) -> list[dict]:
        sql = "SELECT * FROM feedback" + (" WHERE rating < 0" if only_negative else "") + " ORDER BY id"
        with closing(self._connect()) as conn:
            return [self._row(r) for r in conn.execute(sql)]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
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
    path = settings.data_path("feedback.sqlite")
    if not path.exists():
        print(f"no feedback yet ({path} does not exist)", file=sys.stderr)
        cases: list[dict] = []
    else:
        try:
            cases = export_cases(FeedbackStore(path=path), only_negative=only_negative)
        except sqlite3.DatabaseError as exc:
            print(f"cannot read {path}: {exc}", file=sys.stderr)
            return 1
    text = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases)
    if out:
        from . import atomic

        atomic.write_text(out, text)  # an export may overwrite a suite someone curated by hand
        print(f"wrote {len(cases)} case(s) to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
