"""`bpo-assistant ask`: one question in, one answer (or exactly one JSON object) out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .settings import Settings
from .text import normalize


def load_history(path: str | None) -> list[dict]:
    if not path:
        return []
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(t, dict) and "role" in t and "content" in t for t in data):
        raise ValueError(f"{path}: history must be a JSON list of {{\"role\", \"content\"}} objects")
    return data


def cli_ask(settings: Settings, question: str, history_path: str | None, as_json: bool,
            topic: str | None = None) -> int:
    from bpo_assistant.ingest.pipeline import ensure_index

    from .assistant import Assistant
    from .owners.qlog import attach_question_log

    try:
        history = load_history(history_path)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from bpo_assistant.ingest.pipeline import IngestError

    from .index import IndexMismatch, current_generation

    if current_generation(settings) is None:
        # The first question on an empty data dir builds the index: say so instead of ~90 s of silence.
        print(f"building the index from {settings.kb_dir} (first run, about a minute or two)…", file=sys.stderr)
    try:
        ensure_index(settings, progress=sys.stderr.isatty())
        assistant = Assistant.from_settings(settings)
    except (IngestError, IndexMismatch, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    qlog = attach_question_log(assistant, settings, channel="cli")
    try:
        answer = assistant.ask(question, history, topic=topic, channel="cli")
    except ValueError as exc:  # an unknown --topic names the known ones
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if qlog is not None:  # the process ends next: write the row before it does
            qlog.close()
    if as_json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
        return 0
    if answer.notice:
        print(f"({answer.notice})\n")
    if answer.standalone_query and normalize(answer.standalone_query) != normalize(question.strip()):
        print(f"検索クエリ / search query: {answer.standalone_query}\n")
    print(answer.text)
    if answer.curated:
        print("\n[確認済み / verified]")
    return 0
