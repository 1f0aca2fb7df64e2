"""Issue 13 item 9, the allocator: memory the chat frees goes back to the OS (ui/sessions.py SessionJanitor)."""

from __future__ import annotations


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
