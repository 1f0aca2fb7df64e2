"""「この回答をMarkdownで保存」: the latest answer of a chat as a Markdown file with its sources.

The file holds the question, the answer text with its [n] markers, and a Sources list: for each [n] the document
title, the section and the kb text the answer cites. It is built from the session's answer record (chat.py
respond_ui) when that record still belongs to the answer on screen, else from the visible chat alone (then
without sources: a dropped or regenerated answer's citations are not known any more).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bpo_assistant import atomic

from .render import display_body

# One directory for every download: files are named by their content, so asking twice writes nothing new, and
# Gradio serves a copy from its own cache (which it empties when the server stops).
EXPORT_DIR_NAME = "bpo-answer-exports"
KEEP_S = 24 * 3600  # older files are removed when the next one is written: the folder stays small
HEADINGS = {
    "ja": {"question": "質問", "answer": "回答", "sources": "出典", "none": "(出典なし)"},
    "en": {"question": "Question", "answer": "Answer", "sources": "Sources", "none": "(no sources)"},
}


@dataclass(frozen=True)
class Export:
    """What the download button offers: a file path, or none with the reason (shown to the user)."""

    path: Path | None
    reason: str


def _quote(text: str) -> str:
    """Kb text as a Markdown block quote, line by line (a blank line stays inside the quote)."""
    lines = (text or "").strip().splitlines() or [""]
    return "\n".join(f"> {line}".rstrip() for line in lines)


def answer_markdown(record: dict) -> str:
    """The Markdown document for one answer record ({"question", "answer", "citations", "lang"})."""
    lang = record.get("lang") if record.get("lang") in HEADINGS else "ja"
    h = HEADINGS[lang]
    citations = [c for c in record.get("citations") or () if isinstance(c, dict)]
    text = display_body(record.get("answer") or "") if citations else (record.get("answer") or "")
    out = [f"# {h['question']}", "", (record.get("question") or "").strip(), "",
           f"# {h['answer']}", "", text.strip(), "", f"## {h['sources']}", ""]
    if not citations:
        out += [h["none"], ""]
    for c in sorted(citations, key=lambda c: int(c.get("n") or 0)):
        out += [f"[{int(c.get('n') or 0)}] {c.get('title') or c.get('doc_id') or ''} › {c.get('section') or ''}",
                f"(`{c.get('doc_id') or ''}` § `{c.get('section_id') or ''}`)", "", _quote(c.get("text") or ""), ""]
    return "\n".join(out).rstrip() + "\n"


def write_export(record: dict | None, directory: Path | None = None) -> Export:
    """Write the answer's Markdown to a file named by its content; Export(None, reason) when there is no answer."""
    if not record or not (record.get("answer") or "").strip():
        return Export(None, "no answer to save yet")
    text = answer_markdown(record)
    folder = directory or Path(tempfile.gettempdir()) / EXPORT_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bpo-answer-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}.md"
    if not path.exists():
        _prune(folder, time.time() - KEEP_S)
        atomic.write_text(path, text)
    return Export(path, "written")


def _prune(folder: Path, before: float) -> None:
    for old in folder.glob("bpo-answer-*.md"):
        try:
            if old.stat().st_mtime < before:
                old.unlink()
        except OSError:  # another worker removed it first
            pass
