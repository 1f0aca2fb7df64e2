"""The ingest lease in the shared database (bpo_assistant/lease.py): one ingest at a time across hosts, on SQLite and
on PostgreSQL (BPO_TEST_POSTGRES_URL), and a killed holder blocks the next ingest for at most the TTL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import make_settings

from bpo_assistant.lease import Lease, LeaseBusy, ingest_lease
from bpo_assistant.owners.db import engine_for, leases

PG = os.environ.get("BPO_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG, reason="set BPO_TEST_POSTGRES_URL=postgresql+psycopg://… to run on PostgreSQL"))])
def settings(request, tmp_path):
    """Two "hosts" are two data dirs sharing one database URL (a file for SQLite)."""
    url = PG if request.param == "postgresql" else f"sqlite:///{tmp_path / 'shared.sqlite'}"
    settings = make_settings(tmp_path / "host-a", database_url=url, deployment_id="lease-test")
    engine = engine_for(settings)
    leases.drop(engine, checkfirst=True)
    leases.create(engine)
    return settings


def other_host(settings, tmp_path):
    return make_settings(tmp_path / "host-b", database_url=settings.database_url, deployment_id="lease-test")


def test_a_second_host_waits_for_the_first_ingest_and_then_runs(settings, tmp_path):
    b = other_host(settings, tmp_path)
    order = []
    with ingest_lease(settings, ttl_s=5):
        with pytest.raises(LeaseBusy, match=r"ingest:lease-test is held by .*:\d+:"):
            with ingest_lease(b, ttl_s=5, wait_s=0.3):
                pass

        def second():
            with ingest_lease(b, ttl_s=5):
                order.append(("b", time.monotonic()))

        th = threading.Thread(target=second)
        th.start()
        time.sleep(0.8)
        order.append(("a done", time.monotonic()))
    th.join(timeout=10)
    assert [name for name, _ in order] == ["a done", "b"]  # b ran only after a released, not before
    with ingest_lease(b, ttl_s=5, wait_s=0):  # and released in its turn
        pass


def test_another_deployment_on_the_same_database_does_not_wait(settings, tmp_path):
    other = make_settings(tmp_path / "elsewhere", database_url=settings.database_url, deployment_id="other-kb")
    with ingest_lease(settings, ttl_s=5), ingest_lease(other, ttl_s=5, wait_s=0):
        pass


def test_the_heartbeat_keeps_a_long_ingest_exclusive(settings, tmp_path):
    intruder = Lease(engine_for(settings), "ingest:lease-test", ttl_s=0.6)
    with ingest_lease(settings, ttl_s=0.6):
        for _ in range(8):  # 2.4 s: four TTLs
            assert intruder.try_acquire() is not None
            time.sleep(0.3)
    assert intruder.try_acquire() is None


def test_a_killed_holder_blocks_the_next_ingest_only_until_its_lease_expires(settings, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "sys.path.insert(0, 'tests')\n"
        "from conftest import make_settings\n"
        "from bpo_assistant.lease import ingest_lease\n"
        f"s = make_settings({str(tmp_path / 'host-c')!r}, database_url={settings.database_url!r},"
        " deployment_id='lease-test')\n"
        "with ingest_lease(s, ttl_s=1.5):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseBusy):  # alive and beating: held past its 1.5 s TTL
            with ingest_lease(settings, wait_s=2.5):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed = time.monotonic()
        with ingest_lease(settings, wait_s=10):
            waited = time.monotonic() - killed
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert waited <= 1.5 + 1.0  # at most the dead holder's TTL (plus a poll)


def test_without_a_database_url_the_file_lock_is_enough(tmp_path):
    settings = make_settings(tmp_path / "data")
    with ingest_lease(settings) as lease:
        assert lease is None
    assert not (tmp_path / "data").exists()  # not even owners.sqlite: an ingest on a laptop touches no database


def test_an_ingest_on_another_host_waits_for_the_lease(settings, tmp_path, caplog):
    import logging

    from conftest import write_doc

    from bpo_assistant.ingest.pipeline import run_ingest

    kb = tmp_path / "kb"
    write_doc(kb, "ja", "doc-a", {"s1": "請負契約は成果物の完成を約束する契約です。"})
    host_a = make_settings(tmp_path / "host-a", kb, embedder="fake:32", database_url=settings.database_url,
                           deployment_id="lease-test")
    reports = []
    caplog.set_level(logging.WARNING, logger="bpo_assistant.lease")
    with Lease(engine_for(settings), "ingest:lease-test", holder="host-b:42:x").held():  # host b's ingest runs
        th = threading.Thread(target=lambda: reports.append(run_ingest(host_a, progress=False)))
        th.start()
        deadline = time.monotonic() + 60
        while "waiting for ingest:lease-test is held by host-b:42:x" not in caplog.text:
            assert time.monotonic() < deadline and th.is_alive(), "the ingest did not wait for the lease"
            time.sleep(0.1)
        time.sleep(0.5)
        assert th.is_alive() and not reports and not (tmp_path / "host-a" / "CURRENT").exists()
    th.join(timeout=120)
    assert reports and reports[0].written and (tmp_path / "host-a" / "CURRENT").exists()


def test_an_ingest_whose_lease_was_taken_over_does_not_swap_current(settings, tmp_path):
    """A stall longer than the TTL (simulated: another host takes the row mid-ingest) must not end in two ingests
    both making their generation current: the stalled one stops before the swap, the previous index serves on."""
    from conftest import write_doc
    from sqlalchemy import update

    from bpo_assistant.embeddings import FakeEmbeddings
    from bpo_assistant.index import current_generation
    from bpo_assistant.lease import LeaseLost
    from bpo_assistant.ingest.pipeline import run_ingest

    kb = tmp_path / "kb"
    write_doc(kb, "ja", "doc-a", {"s1": "請負契約は成果物の完成を約束する契約です。"})
    host_a = make_settings(tmp_path / "host-a", kb, embedder="fake:32", database_url=settings.database_url,
                           deployment_id="lease-test")
    first = run_ingest(host_a, progress=False)
    assert current_generation(host_a) == first.generation

    class StalledEmbedder(FakeEmbeddings):
        def _passages(self, texts):
            with engine_for(host_a).begin() as conn:  # host b took the lease while this ingest stalled
                conn.execute(update(leases).values(holder="host-b:7:x"))
            return super()._passages(texts)

    write_doc(kb, "ja", "doc-a", {"s1": "請負契約は成果物の完成と検収を約束する契約です。"})
    with pytest.raises(LeaseLost, match="taken over by another host"):
        run_ingest(host_a, embedder=StalledEmbedder(32), progress=False)
    assert current_generation(host_a) == first.generation
