"""Bounded per-session memory for the chat: idle sessions are dropped, and only so many are held at once.

Gradio keeps a SessionState for every browser session (or API client) it has seen: a copy of the whole page's
component configuration plus the session's gr.State values, ~0.2-0.4 MB each. It drops one only when more than
`state_session_capacity` (10,000) exist, and a closed tab only loses its gr.State values, so memory grows with
every visitor and is never given back. The janitor here removes sessions idle for longer than `idle_s` and keeps
at most `max_sessions` (least recently used first out). A dropped session loses only the server's side: its chat
stays in the browser and is sent with the next question, and 👍/👎 on an old answer is rebuilt from the visible
chat (chat.ChatService.record_for).

Gradio's queue keeps two more things per session forever: a message queue (an asyncio.Queue, up to 2,000 of them)
and a set of pending event ids (never removed, only emptied). They are small (~4 KB a session), but they are
allocated among each session's large short-lived objects and outlive them, so they pin the allocator's pages:
the soak's RSS stayed up after the sessions left. The janitor drops them too, for sessions no holder keeps and
with no event pending, on the server's event loop (where the queue mutates them), never from its own thread.

What the soak still shows after that is not held state: a tracemalloc probe (500 sessions, 1,000 questions,
snapshots at start and after they left) found Python's live objects +0.1 MB and glibc's in-use bytes +1.7 MB
for +12.4 MB of RSS, and four 5,000-question soaks ended at 371-381 MB whatever their start (303-355 MB).
Where the rest lives (benchmarks/soak.py prints it by mapping): 3-5 MB is pages of the tokeniser's 188 MB
dictionary file (unidic sys.dic, mmapped: clean, shared with every process that maps it, and growing as any of
them reads more of it); the other 10-11 MB is allocator heap, the same with PYTHONMALLOC=malloc (+12.9, +15.3,
+15.1 MB; Python's own arenas: +16.0), so it is not pymalloc arenas pinned by a few survivors, and no re-exec
under another allocator is worth it. The soak without the HTTP API and the question log (--chat-only) grows as
much (+15.7 MB, under PYTHONMALLOC=malloc as the runs above), so neither they nor the SQLite pool hold it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import datetime
import os
import gc
import logging
import threading
import weakref

log = logging.getLogger(__name__)


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, so RSS would never fall)."""
    try:
        _libc().malloc_trim(0)
    except AttributeError:  # not glibc: the memory is reused by the process instead
        pass


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(n: int = 2) -> bool:
    """At most `n` glibc malloc arenas, as MALLOC_ARENA_MAX=n would: call before the server starts its threads.

    glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core); the chat's worker
    threads spread every session's objects over them, and memory freed in one arena serves only that arena.
    benchmarks/soak.py, 5,000 questions, before the queue leftovers were swept: +28.3 MB after the sessions left
    with the default, +23.3 MB with 2 arenas. After the sweep the difference is within run-to-run noise (1,000
    questions with 16 arenas: +14.7 MB; 5,000 with 2: +14.4 MB), so this is a cheap bound, not the fix.
    An explicit MALLOC_ARENA_MAX wins. Returns whether the limit was set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(_libc().mallopt(M_ARENA_MAX, int(n)))
    except AttributeError:  # not glibc
        return False


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
        self._quiet_trimmed = False  # trimmed since the last sweep that found a session held
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once it has started (_bind_loop)
        demo.extra_startup_events.append(self._bind_loop)

    async def _bind_loop(self) -> None:
        """A startup event of the app (launched or mounted): runs on the server's loop, which the queue runs on."""
        self.loop = asyncio.get_running_loop()

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
        gone = self._drop_queue_leftovers(holders)
        # Once more when the server has gone quiet (no session held): what the last sessions' connections and
        # queue tasks freed after the sweep that dropped them goes back too.
        if held or dropped or gone:
            quiet, self._quiet_trimmed = False, False
        else:
            quiet, self._quiet_trimmed = not self._quiet_trimmed, True
        if dropped or gone or quiet:
            self.dropped += dropped
            gc.collect()
            _release_freed_memory()
            if dropped or gone:
                log.info("dropped %d idle chat sessions (%d held)", dropped, held)
        return dropped

    def _drop_queue_leftovers(self, holders: list) -> int:
        """Remove the queue's message queue and event-id set of every session that no holder keeps and that has
        no event pending; returns how many sessions' entries went. Runs on the server's loop, where push() creates
        them and adds the event id with no await in between, so no session can be caught half-joined."""
        demo, loop = self._demo(), self.loop
        queue = getattr(demo, "_queue", None)
        if queue is None or loop is None or loop.is_closed() or not loop.is_running():
            return 0

        def held(sid) -> bool:
            return any(sid in h.session_data for h in holders)

        async def clean() -> int:
            ids, messages = queue.pending_event_ids_session, queue.pending_messages_per_session
            idle = [sid for sid in set(ids) | set(messages) if not ids.get(sid) and not held(sid)]
            for sid in idle:
                ids.pop(sid, None)
                messages.pop(sid, None)
            return len(idle)

        try:
            return asyncio.run_coroutine_threadsafe(clean(), loop).result(timeout=10)
        except (RuntimeError, TimeoutError, asyncio.TimeoutError):  # the server is stopping, or busy: next time
            return 0

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
