"""Issue 13 item 9, the allocator: memory the chat frees goes back to the OS (ui/sessions.py fix_mmap_threshold).

Each case runs in a fresh interpreter: mallopt settings are per process and must come before the allocations.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not (sys.platform == "linux" and os.confstr("CS_GNU_LIBC_VERSION")),
                                reason="glibc only")

# Answers' large short-lived buffers (1 MiB here), each followed by a small object that outlives it, as a
# session's records outlive the buffers its answer was built in. Prints the RSS (MB) the freed buffers leave
# resident until the next malloc_trim (the janitor's, after a sweep that dropped sessions).
PROBE = r"""
import ctypes, sys
sys.path.insert(0, sys.argv[2])
from bpo_assistant.ui.sessions import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
warm = bytearray(1 << 20); del warm  # glibc raises its threshold to the size of a freed mmapped block
base = rss()
big, small = [], []
for i in range(200):
    b = bytearray(1 << 20)
    b[::4096] = b"x" * len(b[::4096])  # touch every page: resident
    big.append(b)
    small.append(bytes(200) + str(i).encode())
del big  # no malloc_trim: between the janitor's sweeps nothing else returns heap pages
print(rss() - base)
"""


def _left_mb(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", PROBE, mode, root], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    return float(out.stdout.strip())


def test_freed_answer_buffers_leave_no_resident_memory_with_the_fixed_threshold():
    fixed, default = _left_mb("fixed"), _left_mb("default")
    assert fixed < 10, f"{fixed:.1f} MB of 200 MB freed stayed resident with the threshold fixed"
    # the case it guards against: glibc's moving threshold puts the buffers in the heap among survivors
    assert default > fixed, (default, fixed)


def test_an_operators_mmap_threshold_wins(monkeypatch):
    from bpo_assistant.ui.sessions import fix_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False


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
