"""Saved chats (BPO_SAVE_HISTORY, off by default): each user's past conversations, kept on the server.

Gradio's own `save_history` keeps them in the browser's localStorage under one key per app, encrypted with a
secret drawn at every server start: a second user logging in on the same browser sees the first one's chats,
and a restart loses them all. So they live here instead, under the data dir, one JSON file per chat in a
folder per login name (a hash of it: a name never becomes a path). Without a login every visitor is the same
local user. Each chat keeps the server's records of its answers, so a reopened chat still has its citations
(👍/👎, the Markdown download). Bounded: at most `max_chats` per user (the least recently updated go first)
and `max_bytes` per chat (its oldest turns go first). Every write goes through atomic.py; a file that cannot
be read is named in the log and in the listing's `skipped`, and left where it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bpo_assistant import atomic

log = logging.getLogger(__name__)

MAX_CHATS = 30
MAX_CHAT_BYTES = 256 * 1024
TITLE_CHARS = 60
_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class SavedChat:
    id: str
    title: str
    updated: float  # time.time() of the last save
    messages: tuple  # the chat as the Chatbot shows it (role/content dicts)
    records: dict  # chat.ChatService records: message index -> answer record (citations, sections)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Listing:
    chats: tuple[SavedChat, ...]  # newest first
    skipped: tuple[Skipped, ...]  # files that could not be read, each with why


@dataclass(frozen=True)
class SaveResult:
    chat: SavedChat | None
    reason: str  # "saved", "trimmed N oldest messages to fit", "nothing to save", ...


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return " ".join(_text(c) for c in content)
    return ""


class SavedChats:
    """The store: save / list / load / delete, per user. Thread-safe within one process."""

    def __init__(self, root: str | Path, max_chats: int = MAX_CHATS, max_bytes: int = MAX_CHAT_BYTES) -> None:
        self.root = Path(root)
        self.max_chats = max(1, int(max_chats))
        self.max_bytes = max(1024, int(max_bytes))
        self._lock = threading.Lock()

    def folder(self, user: str | None) -> Path:
        name = user if isinstance(user, str) and user else ""
        return self.root / hashlib.sha256(f"user:{name}".encode()).hexdigest()[:32]

    def _path(self, user: str | None, chat_id: str) -> Path | None:
        return self.folder(user) / f"{chat_id}.json" if isinstance(chat_id, str) and _ID.match(chat_id) else None

    def _read(self, path: Path, user: str | None) -> SavedChat:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ValueError("not a saved chat (no message list)")
        if data.get("user", "") != (user or ""):
            raise ValueError("belongs to another user")
        records = {int(k): v for k, v in (data.get("records") or {}).items() if str(k).isdigit() and isinstance(v, dict)}
        return SavedChat(path.stem, str(data.get("title") or ""), float(data.get("updated") or 0.0),
                         tuple(m for m in data["messages"] if isinstance(m, dict)), records)

    def list(self, user: str | None) -> Listing:
        chats, skipped = [], []
        folder = self.folder(user)
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                chats.append(self._read(path, user))
            except (OSError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("saved chat %s skipped: %s", path, reason)
                skipped.append(Skipped(path, reason))
        chats.sort(key=lambda c: c.updated, reverse=True)
        return Listing(tuple(chats), tuple(skipped))

    def load(self, user: str | None, chat_id: str) -> SavedChat | None:
        path = self._path(user, chat_id)
        if path is None or not path.is_file():
            return None
        try:
            return self._read(path, user)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("saved chat %s unreadable: %s", path, exc)
            return None

    def delete(self, user: str | None, chat_id: str) -> bool:
        path = self._path(user, chat_id)
        if path is None:
            return False
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        return True

    def save(self, user: str | None, chat_id: str | None, messages: list, records: dict | None) -> SaveResult:
        """Write the chat (a new one when `chat_id` is None or unknown); returns it with the reason."""
        messages = [m for m in messages or () if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
        if not messages:
            return SaveResult(None, "nothing to save")
        chat_id = chat_id if isinstance(chat_id, str) and _ID.match(chat_id) else secrets.token_hex(8)
        first = next((_text(m.get("content")) for m in messages if m.get("role") == "user"), "")
        title = " ".join(first.split())[:TITLE_CHARS] or "…"
        records = {int(k): v for k, v in (records or {}).items() if isinstance(v, dict) and str(k).isdigit()}
        dropped = 0
        while True:
            body = {"user": user or "", "title": title, "updated": time.time(), "messages": messages,
                    "records": {str(k): v for k, v in records.items()}}
            data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
            if len(data) <= self.max_bytes or len(messages) <= 2:
                break
            # Too big: drop the oldest question and its answer, and shift the records' indexes with them.
            cut = 2 if len(messages) > 2 and messages[1].get("role") == "assistant" else 1
            messages = messages[cut:]
            records = {k - cut: v for k, v in records.items() if k >= cut}
            dropped += cut
        if len(data) > self.max_bytes:
            return SaveResult(None, f"one answer is larger than {self.max_bytes} bytes: not saved")
        with self._lock:
            atomic.write_bytes(self.folder(user) / f"{chat_id}.json", data)
            self._evict(user, keep=chat_id)
        chat = SavedChat(chat_id, title, body["updated"], tuple(messages), records)
        return SaveResult(chat, f"saved, {dropped} oldest messages dropped to fit" if dropped else "saved")

    def _evict(self, user: str | None, keep: str) -> None:
        """At most max_chats: the least recently written go (by mtime, so an unreadable file counts too)."""
        paths = [p for p in self.folder(user).glob("*.json") if p.stem != keep]
        if len(paths) < self.max_chats:
            return
        paths.sort(key=lambda p: p.stat().st_mtime)
        for path in paths[: len(paths) - self.max_chats + 1]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
