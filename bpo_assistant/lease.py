"""One ingest at a time across hosts: a lease row in the shared database (BPO_DATABASE_URL).

The file lock in the data dir (ingest/store.py: ingest_lock) only excludes processes whose kernel sees the same lock,
which a shared directory on several hosts may not give. With BPO_DATABASE_URL set, an ingest first takes the lease
`ingest:<deployment id>` (installations sharing the database but not the index do not wait for each other), then
the file lock. The holder's heartbeat thread extends the lease every ttl/3; a holder that is killed stops renewing,
and its lease is free TTL seconds later, so a SIGKILLed ingest blocks the next one for at most TTL, never for good.

Taking and extending are compare-and-set updates (WHERE holder = … AND expires_at = …), portable to SQLite and
PostgreSQL without upserts or row locks. Expiry is judged by each host's clock, so hosts must agree to well within
the TTL (NTP does). Without BPO_DATABASE_URL there is one database file per data dir and the file lock is enough: no
lease is taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .owners.db import engine_for, leases
from .settings import Settings

log = logging.getLogger(__name__)

TTL_S = 60.0  # a heartbeat every 20 s; a killed holder blocks the next ingest for at most a minute


@dataclass(frozen=True)
class Holder:
    """Who has a lease, as the process waiting for it sees it."""

    name: str
    holder: str
    acquired_at: float
    expires_at: float


class LeaseBusy(RuntimeError):
    def __init__(self, held: Holder) -> None:
        super().__init__(f"{held.name} is held by {held.holder} since "
                         f"{time.strftime('%H:%M:%S', time.localtime(held.acquired_at))} "
                         f"(expires in {max(0.0, held.expires_at - time.time()):.0f} s unless its holder extends it)")
        self.held = held


class LeaseLost(RuntimeError):
    """The ingest held its lease past the TTL without a heartbeat and another host took it: this ingest must not
    make its generation current (the other one may be writing its own)."""


_current = threading.local()  # the lease the running thread's ingest holds (confirm_ingest_lease)


class Lease:
    def __init__(self, engine: Engine, name: str, ttl_s: float = TTL_S, holder: str | None = None) -> None:
        self.engine, self.name, self.ttl_s = engine, name, ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def try_acquire(self) -> Holder | None:
        """None when this process now holds the lease; else who holds it."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(leases).where(leases.c.name == self.name)).first()
                if row is None:
                    conn.execute(insert(leases).values(name=self.name, holder=self.holder, acquired_at=now,
                                                       expires_at=now + self.ttl_s))
                    return None
                held = Holder(row.name, row.holder, row.acquired_at, row.expires_at)
                if row.holder != self.holder and row.expires_at > now:
                    return held
                taken = conn.execute(update(leases).where(
                    leases.c.name == self.name, leases.c.holder == row.holder,
                    leases.c.expires_at == row.expires_at).values(
                    holder=self.holder, acquired_at=now, expires_at=now + self.ttl_s)).rowcount
                if taken == 1 and row.holder != self.holder:
                    log.warning("took over %s from %s, whose lease expired %.0f s ago (killed?)", self.name,
                                row.holder, now - row.expires_at)
                return None if taken == 1 else held
        except IntegrityError:  # another process inserted the row between our select and insert
            return Holder(self.name, "?", now, now + self.ttl_s)

    def renew(self) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(leases).where(leases.c.name == self.name, leases.c.holder == self.holder)
                                .values(expires_at=time.time() + self.ttl_s)).rowcount == 1

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(leases).where(leases.c.name == self.name, leases.c.holder == self.holder))

    @contextlib.contextmanager
    def held(self, wait_s: float | None = None, poll_s: float = 0.5):
        """Wait for the lease (at most `wait_s`, else raise LeaseBusy; None waits like a lock), hold it with a
        heartbeat while the block runs, release it after."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        said = False
        while (held := self.try_acquire()) is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseBusy(held)
            if not said:
                log.warning("waiting for %s", LeaseBusy(held))
                said = True
            time.sleep(poll_s)
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), name=f"lease-{self.name}", daemon=True)
        beat.start()
        try:
            yield self
        finally:
            stop.set()
            beat.join()
            self.release()

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_s / 3):
            try:
                if not self.renew():
                    # Only a stall longer than the TTL gets here; confirm_ingest_lease then refuses the swap.
                    log.error("lost %s (held longer than %.0f s without a heartbeat)", self.name, self.ttl_s)
                    return
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again before expiry
                log.exception("could not extend %s", self.name)


@contextlib.contextmanager
def ingest_lease(settings: Settings, ttl_s: float = TTL_S, wait_s: float | None = None):
    """The ingest's cross-host lease when BPO_DATABASE_URL is set; nothing otherwise (yields None)."""
    if not settings.database_url:
        yield None
        return
    from .index import deployment_id

    with Lease(engine_for(settings), f"ingest:{deployment_id(settings)}", ttl_s).held(wait_s) as lease:
        _current.lease = lease
        try:
            yield lease
        finally:
            _current.lease = None


def confirm_ingest_lease() -> None:
    """Right before an ingest swaps CURRENT: still ours? (and extended). Raises LeaseLost otherwise; a no-op when
    this thread holds no lease (no BPO_DATABASE_URL)."""
    lease = getattr(_current, "lease", None)
    if lease is not None and not lease.renew():
        raise LeaseLost(f"{lease.name} was taken over by another host while this ingest ran (it stalled longer than "
                        f"the {lease.ttl_s:.0f} s lease); its generation is not made current")
