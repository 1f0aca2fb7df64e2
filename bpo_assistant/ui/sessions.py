"""Bounded per-session memory for the chat: idle sessions are dropped, and only so many are held at once.

Gradio keeps a SessionState for every browser session (or API client) it has seen: a copy of the whole page's
component configuration plus the session's gr.State values, ~0.2-0.4 MB each. It drops one only when more than
`state_session_capacity` (10,000) exist, and a closed tab only loses its gr.State values, so memory grows with
every visitor and is never given back. The janitor here removes sessions idle for longer than `idle_s` and keeps
at most `max_sessions` (least recently used first out). A dropped session loses only the server's side: its chat
stays in the browser and is sent with the next question, and 👍/👎 on an old answer is rebuilt from the visible
chat (chat.ChatService.record_for).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import gc
import logging
import threading
import weakref

log = logging.getLogger(__name__)


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, so RSS would never fall)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused by the process instead
        pass


class SessionJanitor:
    """Drops idle sessions of one gr.Blocks app every `every_s` seconds, in a daemon thread.

    The thread holds the app only weakly and ends with it (or with stop()).
    """

    def __init__(self, demo, idle_s: float, max_sessions: int, every_s: float | None = None) -> None:
        self._demo = weakref.ref(demo)
        self.idle_s = float(idle_s)
        self.max_sessions = max(1, int(max_sessions))
        self.every_s = float(every_s) if every_s else max(1.0, min(60.0, self.idle_s / 4))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def holders(self) -> list:
        """The app's session stores: the one its routes use and, when another App object is what the queue runs
        validators against (demo.app: see api/http.py create_app), that one too."""
        demo = self._demo()
        if demo is None:
            return []
        found = []
        for holder in (getattr(demo, "state_holder", None), getattr(getattr(demo, "app", None), "state_holder", None)):
            if holder is not None and all(holder is not h for h in found):
                found.append(holder)
        return found

    def sweep(self, now: datetime.datetime | None = None) -> int:
        """Drop the sessions idle for longer than idle_s; returns how many were dropped."""
        holders = self.holders()
        if not holders:  # not served yet
            return 0
        now = now or datetime.datetime.now()  # Gradio stamps last use with naive local time
        limit = datetime.timedelta(seconds=self.idle_s)
        dropped, held = 0, 0
        for holder in holders:
            holder.capacity = min(holder.capacity, self.max_sessions)
            with holder.lock:
                idle = [sid for sid, last in list(holder.time_last_used.items()) if now - last > limit]
                for sid in idle:
                    holder.session_data.pop(sid, None)
                    holder.time_last_used.pop(sid, None)
                while len(holder.session_data) > self.max_sessions:
                    sid, _ = holder.session_data.popitem(last=False)
                    holder.time_last_used.pop(sid, None)
                    idle.append(sid)
            dropped += len(idle)
            held += len(holder.session_data)
        if dropped:
            self.dropped += dropped
            gc.collect()
            _release_freed_memory()
            log.info("dropped %d idle chat sessions (%d held)", dropped, held)
        return dropped

    def start(self) -> "SessionJanitor":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bpo-session-janitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self._demo() is None:
                return
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep is retried next time; the chat must not notice
                log.exception("session sweep failed")
