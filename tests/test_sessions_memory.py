"""Issue 13 item 9, the allocator: memory the chat frees goes back to the OS (ui/sessions.py SessionJanitor)."""

from __future__ import annotations

import os
import time

import pytest

from bpo_assistant.settings import OFFLINE_ENV

for _k, _v in OFFLINE_ENV.items():  # gradio_client reads GRADIO_ANALYTICS_ENABLED too
    os.environ.setdefault(_k, _v)


def test_the_janitor_trims_once_more_when_the_server_goes_quiet(monkeypatch):
    """What the last sessions freed after the sweep that dropped them (their connections, queue tasks) is handed
    back by the next sweep that finds no session held, once, not on every idle sweep."""
    import datetime

    from bpo_assistant.ui import sessions

    trims = []
    monkeypatch.setattr(sessions, "_release_freed_memory", lambda: trims.append(1))

    class Holder:
        def __init__(self):
            import collections
            import threading

            self.capacity, self.lock = 10, threading.Lock()
            self.session_data, self.time_last_used = collections.OrderedDict(), {}

    holder = Holder()
    class Demo:  # the parts of a gr.Blocks the janitor reads; not served, so no queue to clean
        state_holder, app, extra_startup_events = holder, None, []

    demo = Demo()
    janitor = sessions.SessionJanitor(demo, idle_s=60, max_sessions=10)
    now = datetime.datetime.now()
    holder.session_data["s1"], holder.time_last_used["s1"] = object(), now
    janitor.sweep(now)
    assert trims == []  # a session is held: nothing to give back
    janitor.sweep(now + datetime.timedelta(seconds=61))
    assert len(trims) == 1  # the sweep that dropped it
    janitor.sweep(now + datetime.timedelta(seconds=62))
    assert len(trims) == 2  # the server is quiet: once more
    janitor.sweep(now + datetime.timedelta(seconds=63))
    assert len(trims) == 2  # and not again while it stays quiet


def _ask_in_sessions(base: str, sessions: int, questions: tuple[str, ...], workers: int = 4) -> list[str]:
    """`sessions` gradio_client sessions (each its own Client, so the server keeps its history), each asking
    `questions`, `workers` at a time; the errors."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    def one(_k: int) -> list[str]:
        client = Client(base, verbose=False, ssl_verify=False, analytics_enabled=False)
        try:
            answers = [str(client.submit(q, api_name="/chat").result(timeout=120)) for q in questions]
            return [f"{q}: no answer" for q, a in zip(questions, answers) if not a.strip()]
        except Exception as exc:  # noqa: BLE001 - counted, and the test fails on any
            return [f"{type(exc).__name__}: {exc}"]
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [e for errs in pool.map(one, range(sessions)) for e in errs]


def _settled_rss_mb(pid: int, wait_s: float) -> float:
    """The server's RSS once its sweeps have run: the lowest of a few readings over `wait_s` seconds (a sweep
    trims, a heartbeat or log write allocates a little between two)."""
    import psutil

    proc, lowest = psutil.Process(pid), float("inf")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        lowest = min(lowest, proc.memory_info().rss / 2**20)
    return lowest


@pytest.mark.slow
@pytest.mark.server
def test_the_real_chat_gives_back_the_memory_of_sessions_that_left(real_settings, tmp_path):
    """300 sessions x 2 questions against the real `bpo-assistant chat` (subprocess, real index and embedder,
    sessions idle after 2 s): once they have left, the server's RSS is within 12 MB of where it was after a
    warm-up. A session the server keeps costs >= 0.17 MB (Gradio's SessionState with its copy of the page's
    config, the chat history, the queue's entries): the same run with the idle limit at 3600 s (nothing dropped)
    grew +55.9 MB. benchmarks/soak.py is the 5,000-question version."""
    from api_server import start

    from conftest import free_port

    server = start(real_settings, free_port(), tmp_path / "server.log", chat_session_idle_s=2)
    try:
        base = server.base + "/"
        questions = ("BPOとは何ですか？", "じゃあ準委任とはどう違う？")
        # First use (tokeniser, caches, worker threads and their arenas) is paid once, whatever the sessions.
        assert _ask_in_sessions(base, 8, questions * 3) == []
        start_mb = _settled_rss_mb(server.proc.pid, 8)
        assert _ask_in_sessions(base, 300, questions) == []
        left_mb = _settled_rss_mb(server.proc.pid, 10)
        assert left_mb - start_mb <= 12, (
            f"RSS {start_mb:.1f} -> {left_mb:.1f} MB after 300 sessions left: their memory was not given back")
    finally:
        assert server.stop() in (0, 130), server.stderr()[-2000:]
