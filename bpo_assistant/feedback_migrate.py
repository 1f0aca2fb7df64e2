"""One-time move of a data dir's legacy feedback.sqlite (the store before issue 11) into the shared feedback table.

Run by FeedbackStore(settings) on first start. The old rows are copied in one transaction, then the file is renamed
to feedback.sqlite.migrated-<time> (kept, never deleted: it is the user's data). Nothing is lost if the process dies
half-way: until the rename the file stays where it was, and a row already in the table (same created time, session
and question: `created` is a float of microsecond resolution, so two different ratings never share it) is not copied
twice on the next start. Replicas sharing the data dir take a file lock, so one of them migrates.

Ids are kept when the table never handed one out (a single host's first start: question-log rows linked to a rating
keep pointing at it); otherwise (another host's ratings are there already) rows get new ids and qlog.link_feedback
re-links the log by question text and time, as it does for every rating.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from . import atomic
from .owners.db import feedback, safe_url
from .settings import Settings

log = logging.getLogger(__name__)

LEGACY = "feedback.sqlite"
_COLUMNS = [c.name for c in feedback.columns]


@dataclass(frozen=True)
class Migration:
    source: str
    copied: int
    already: int  # rows of the file the table held already (a migration interrupted before the rename)
    kept_as: str  # where the old file is now; empty when it could not be read and stays in place
    reason: str


def migrate_legacy(settings: Settings, engine: Engine) -> Migration | None:
    src = settings.data_path(LEGACY)
    if not src.exists() or _same_file(src, engine):
        return None
    with atomic.exclusive(settings.data_path(".feedback-migrate.lock")):
        if not src.exists():  # another replica on this data dir did it while we waited
            return None
        try:
            rows = _read(src)
        except sqlite3.DatabaseError as exc:
            log.error("feedback: cannot read %s (%s); left in place, nothing migrated", src, exc)
            return Migration(str(src), 0, 0, "", f"unreadable: {exc}")
        copied, already = _copy(rows, engine)
        kept = src.with_name(f"{LEGACY}.migrated-{time.strftime('%Y%m%dT%H%M%S')}")
        src.rename(kept)
        for suffix in ("-wal", "-shm"):  # empty after the clean close in _read; the pair would confuse a reader
            side = src.with_name(LEGACY + suffix)
            if side.exists():
                side.rename(kept.with_name(kept.name + suffix))
    result = Migration(str(src), copied, already, str(kept),
                       f"copied {copied} feedback row(s) ({sum(r['rating'] < 0 for r in rows)} 👎 of {len(rows)} "
                       f"in the file, {already} already present) into {safe_url(str(engine.url))}")
    log.warning("feedback: migrated %s: %s; the old file is kept as %s", src, result.reason, kept)
    return result


def _same_file(src: Path, engine: Engine) -> bool:
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    return bool(db) and Path(db).resolve() == src.resolve()




def _read(src: Path) -> list[dict]:
    # A plain (read-write) open so rows still in the -wal file are read too; closing checkpoints them.
    conn = sqlite3.connect(src, timeout=10.0)
    try:
        conn.row_factory = sqlite3.Row
        have = {r[1] for r in conn.execute("PRAGMA table_info(feedback)")}
        if not have:
            return []
        cols = [c for c in _COLUMNS if c in have]
        return [dict(r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM feedback ORDER BY id")]
    finally:
        conn.close()


def _copy(rows: list[dict], engine: Engine) -> tuple[int, int]:
    if not rows:
        return 0, 0
    with engine.begin() as conn:
        lo, hi = min(r["created"] for r in rows), max(r["created"] for r in rows)
        present = {(r.created, r.session, r.question) for r in conn.execute(
            select(feedback.c.created, feedback.c.session, feedback.c.question)
            .where(feedback.c.created.between(lo, hi)))}
        todo = [r for r in rows if (r["created"], r.get("session") or "", r["question"]) not in present]
        if not todo:
            return 0, len(rows)
        keep_ids = _fresh(conn, engine.dialect.name)
        values = []
        for r in todo:
            v = {k: r[k] for k in _COLUMNS if k in r and (keep_ids or k != "id")}
            v["refused"] = bool(v.get("refused"))
            values.append(v)
        conn.execute(insert(feedback), values)
        if keep_ids and engine.dialect.name == "postgresql":
            # Explicit ids do not advance the serial's sequence: the next rating would collide with a copied one.
            conn.execute(text("SELECT setval(pg_get_serial_sequence('feedback', 'id'), "
                              "(SELECT MAX(id) FROM feedback))"))
    return len(todo), len(rows) - len(todo)


def _fresh(conn, dialect: str) -> bool:
    """No id was ever handed out in the table. Only then may the file's ids be kept: an id once used and deleted
    here may still be named by a question-log row that link_feedback has not cleared yet."""
    if dialect == "sqlite":
        return conn.execute(text("SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'feedback'")).scalar() == 0
    if dialect == "postgresql":
        seq = conn.execute(text("SELECT pg_get_serial_sequence('feedback', 'id')")).scalar()
        return seq is not None and not conn.execute(text(f"SELECT is_called FROM {seq}")).scalar()
    return False
