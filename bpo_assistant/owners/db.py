"""The shared database: the question log, the triage status and the users' feedback, through SQLAlchemy Core.

SQLite at data_dir/owners.sqlite by default; `BPO_DATABASE_URL` points the same tables at PostgreSQL (or any
SQLAlchemy URL), which is what several app replicas need: each writes feedback and log rows into one table, and
ingests on different hosts take turns through the lease table (bpo_assistant/lease.py). Only Core constructs
portable across both are used: no JSON column type (lists are stored as JSON text, so SQLite and PostgreSQL read
them the same way), no upserts.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import (Boolean, CheckConstraint, Column, Float, ForeignKey, Index, Integer, MetaData, String,
                        Table, Text, create_engine, event)
from sqlalchemy.engine import Engine

from ..settings import Settings

STATUSES = ("未対応", "対応中", "対応済み", "対象外")  # open, in progress, resolved, out of scope
OPEN, IN_PROGRESS, RESOLVED, OUT_OF_SCOPE = STATUSES

metadata = MetaData()

questions = Table(
    "question_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),  # unix time the answer was ready
    Column("question", Text, nullable=False),
    Column("lang", String(8), nullable=False),
    Column("topic", String(80)),
    Column("channel", String(16), nullable=False, default=""),
    Column("kind", String(16), nullable=False),
    Column("refused", Boolean, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("confidence", Float, nullable=False, default=0.0),
    Column("routed", Text, nullable=False, default="[]"),  # JSON [["doc#section", p], …] (router top-3)
    Column("cited", Text, nullable=False, default="[]"),  # JSON ["doc#section", …] in citation order
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("generation", String(64), nullable=False, default=""),
    Column("user", String(200)),  # a login name when auth is on; NULL otherwise (privacy by default)
    Column("feedback_id", Integer),  # the feedback table's row once linked (qlog.link_feedback)
    Column("rating", Integer),  # that row's 👍 1 / 👎 -1
)
Index("question_log_at", questions.c.at)

# One row per question that an owner has touched; a question without a row is 未対応.
triage = Table(
    "triage_status", metadata,
    Column("question_id", Integer, ForeignKey("question_log.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(8), nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("resolution", Text, nullable=False, default=""),  # e.g. "question:bpo-overview#definition"
)

# 👍/👎 from the chat (bpo_assistant/feedback.py). sqlite_autoincrement: a withdrawn rating's id must never come back
# as another row, or a question-log row linked to it would silently take the new rating (PostgreSQL's serial never
# reuses ids either).
feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("session", String(200), nullable=False, default=""),
    Column("message_index", Integer),
    Column("question", Text, nullable=False),
    Column("lang", String(8), nullable=False, default="ja"),
    Column("history", Text, nullable=False, default="[]"),  # JSON [{"role", "content"}, …]
    Column("answer", Text, nullable=False, default=""),
    Column("citations", Text, nullable=False, default="[]"),  # JSON [Citation.to_json(), …]
    Column("standalone_query", Text, nullable=False, default=""),
    Column("kind", String(40), nullable=False, default=""),
    Column("refused", Boolean, nullable=False, default=False),
    Column("rating", Integer, CheckConstraint("rating IN (-1, 1)", name="feedback_rating_value"), nullable=False),
    Column("reason", String(40), nullable=False, default=""),
    Column("comment", Text, nullable=False, default=""),
    sqlite_autoincrement=True,
)
Index("feedback_rating", feedback.c.rating)
Index("feedback_created", feedback.c.created)

# One row per held lease (bpo_assistant/lease.py): "ingest:<deployment id>" while an ingest runs on some host.
leases = Table(
    "lease", metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid:random of the process holding it
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # unix time; the holder's heartbeat moves it on
)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database_url(settings: Settings) -> str:
    return settings.database_url or f"sqlite:///{Path(settings.data_dir).resolve() / 'owners.sqlite'}"


def engine_for(settings: Settings) -> Engine:
    """One engine (and pool) per URL for the process; tables are created on first use."""
    return engine_for_url(database_url(settings))


def engine_for_url(url: str) -> Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            metadata.create_all(engine)
            _engines[url] = engine
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL: the chat writes while `bpo-assistant triage` reads; NORMAL sync is durable enough for a log and keeps
    # each insert off the disk's fsync path.
    # busy_timeout first so the journal_mode statement itself waits for a writer instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def safe_url(url: str) -> str:
    """The URL for a log line: the password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse never reached an engine anyway
        return "<unparsable database URL>"


def dispose_all() -> None:
    """Tests and short-lived processes: close every pooled connection."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
