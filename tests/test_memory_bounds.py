"""Issue 13 item 9, the served app: per-session memory of `bpo-assistant chat` (the chat mounted in the API's
FastAPI app, not launched by Gradio) is bounded and given back when sessions leave.

The soak found +84.7 MB after 5,000 questions from 500 sessions under serve(), +23.3 MB for the launched chat.
The cause: Gradio runs the chat's validator against `blocks.app`, which mount_gradio_app leaves at an unserved
App, so each session got a second SessionState (~0.17 MB) in a state holder nobody swept (api/http.py).
Then +16.6 MB (1,000 questions): Gradio's queue kept every session's message queue and event-id set, small
but pinning the allocator's pages among each session's freed objects (ui/sessions.py).
"""

from __future__ import annotations

import datetime
import gc
import os
import threading
import time

import pytest

from bpo_assistant.settings import OFFLINE_ENV
from conftest import free_port, make_settings

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

gr = pytest.importorskip("gradio")

from test_ui_app import FakeAssistant  # noqa: E402


def _holders(skip: frozenset = frozenset()) -> list:
    from gradio.state_holder import StateHolder

    gc.collect()
    return [o for o in gc.get_objects() if type(o) is StateHolder and id(o) not in skip]


def _holders_with_sessions(skip: frozenset = frozenset()) -> list[int]:
    """How many sessions each of Gradio's state holders in this process holds (the non-empty ones), leaving out
    `skip`: holders of apps other tests of the same run built (a launched test app keeps its own sessions)."""
    return [len(o.session_data) for o in _holders(skip) if o.session_data]


def test_the_chat_limits_malloc_arenas_unless_the_operator_chose(monkeypatch):
    from bpo_assistant.ui.sessions import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # glibc read the operator's value at start; ours must not override it
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    if os.uname().sysname == "Linux" and os.confstr("CS_GNU_LIBC_VERSION"):
        assert limit_malloc_arenas() is True


def test_the_janitor_never_drops_the_queue_entries_of_a_session_with_an_event_pending(tmp_path):
    """Unit level, on a real event loop: a held session and one with a pending event keep their entries."""
    import asyncio

    from bpo_assistant.ui.app import build_app

    demo = build_app(FakeAssistant(), make_settings(tmp_path / "data", chat_session_idle_s=3600))
    janitor = demo.session_janitor
    janitor.stop()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(janitor._bind_loop(), loop).result(timeout=5)
        queue = demo._queue
        demo.state_holder.capacity = 10
        for sid in ("gone", "pending", "held"):
            queue.pending_messages_per_session[sid] = object()
            queue.pending_event_ids_session[sid] = {"e1"} if sid == "pending" else set()
        demo.state_holder.session_data["held"] = object()
        demo.state_holder.time_last_used["held"] = datetime.datetime.now()
        janitor.sweep()
        assert set(queue.pending_messages_per_session) == {"pending", "held"}
        assert set(queue.pending_event_ids_session) == {"pending", "held"}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def test_the_mounted_chat_keeps_its_sessions_in_the_holder_the_janitor_sweeps(tmp_path):
    """Unit level: after create_app, the App the queue runs validators against is the served one."""
    from starlette.routing import Mount

    from bpo_assistant.api.http import create_app
    from bpo_assistant.ui.app import build_app

    settings = make_settings(tmp_path / "data")
    demo = build_app(FakeAssistant(), settings)
    try:
        app = create_app(FakeAssistant(), settings, demo)
        served = next(r.app for r in app.routes if isinstance(r, Mount))
        assert demo.app is served  # gradio/queueing.py: call_process_api(app=self.blocks.app) for validators
        assert demo.app.state_holder is demo.state_holder
        assert demo.session_janitor.holders() == [demo.state_holder]
    finally:
        demo.session_janitor.stop()


@pytest.mark.slow
@pytest.mark.server
def test_sessions_of_the_served_chat_are_all_dropped_after_they_leave(tmp_path):
    """N gradio_client sessions through the real ASGI stack (FastAPI + mounted Gradio + our middlewares, uvicorn
    on loopback): once they are idle, no state holder anywhere keeps a SessionState for any of them."""
    import uvicorn
    from gradio_client import Client

    from bpo_assistant.api.http import create_app
    from bpo_assistant.ui.app import build_app

    n = 8
    others = frozenset(id(o) for o in _holders())  # every holder that exists before this test's app
    settings = make_settings(tmp_path / "data", chat_session_idle_s=1.5, chat_max_sessions=1000, log_questions=False)
    demo = build_app(FakeAssistant(), settings)
    demo.session_janitor.every_s = 0.3
    app = create_app(FakeAssistant(), settings, demo)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        base = f"http://127.0.0.1:{port}/"
        for _ in range(n):
            client = Client(base, verbose=False, ssl_verify=False, analytics_enabled=False)
            try:
                assert "[1]" in str(client.predict("BPOとは何ですか？", api_name="/chat"))
            finally:
                client.close()
        # one SessionState per session, in the holder the janitor sweeps (before the fix: 2n, n of them elsewhere)
        assert sum(_holders_with_sessions(others)) <= n
        deadline = time.monotonic() + 10
        while _holders_with_sessions(others) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _holders_with_sessions(others) == [], "sessions kept after they left (and were idle past the limit)"
        queue = demo._queue  # and the queue's per-session leftovers, swept on the server's loop
        deadline = time.monotonic() + 10
        while (queue.pending_event_ids_session or queue.pending_messages_per_session) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not queue.pending_event_ids_session and not queue.pending_messages_per_session, (
            f"the queue keeps {len(queue.pending_messages_per_session)} sessions' message queues after they left")
    finally:
        demo.session_janitor.stop()
        stop = getattr(app.state, "gradio_stop_event", None)
        if stop is not None and getattr(server, "started", False):
            loop = getattr(stop, "_loop", None)
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(stop.set)
        server.should_exit = True
        thread.join(timeout=15)
