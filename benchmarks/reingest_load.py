"""Answers while the kb is re-ingested: N sessions ask without pause, first with no ingest running, then while
an owner edits one document and re-ingests R times (a separate process, as `bpo-assistant ingest` is).

Prints errors and p50/p95 for both phases and their ratio. Target (issue 13): 0 errors, p95 ≤ 1.5× the
no-ingest p95. Runs on a copy of kb/ in a temporary data dir; the real embedder.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reingest_load.py [--sessions 8] [--reingests 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.answer import percentile  # noqa: E402

QUESTIONS = ["BPOとは何ですか？", "請負契約と準委任契約の違いは？", "BPOのメリットは？", "業者選びのポイントは？",
             "BPOって結局なに？ざっくり教えて", "セキュリティで確認することは？", "What is BPO?"]


def run_phase(assistant, sessions: int, until) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    served: set[str] = set()
    lock = threading.Lock()

    def session(n: int) -> None:
        i = n
        while not until():
            q = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            t = time.perf_counter()
            try:
                assistant.ask(q)
            except Exception as exc:  # noqa: BLE001 - counted: that is the measurement
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:160])
                continue
            with lock:
                latencies.append((time.perf_counter() - t) * 1000)
                served.add(assistant.kb.generation)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, served


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--reingests", type=int, default=20)
    parser.add_argument("--baseline-s", type=float, default=30.0, help="length of the no-ingest phase")
    args = parser.parse_args()
    from bpo_assistant.settings import Settings, set_offline_env

    set_offline_env()
    tmp = Path(tempfile.mkdtemp(prefix="bpo-reingest-"))
    kb = tmp / "kb"
    shutil.copytree(ROOT / "kb", kb)
    env = {**os.environ, "BPO_KB_DIR": str(kb), "BPO_DATA_DIR": str(tmp / "data"), "OMP_NUM_THREADS": "1"}
    ingest = [sys.executable, "-m", "bpo_assistant.cli", "ingest", "--quiet"]
    subprocess.run(ingest, env=env, cwd=ROOT, check=True, capture_output=True)
    from bpo_assistant.assistant import Assistant

    assistant = Assistant.from_settings(Settings(kb_dir=kb, data_dir=tmp / "data"))
    deadline = time.monotonic() + args.baseline_s
    quiet, quiet_errors, _ = run_phase(assistant, args.sessions, lambda: time.monotonic() > deadline)

    done = threading.Event()

    def owner() -> None:
        doc = kb / "ja" / "bpo-overview.md"
        original = doc.read_text(encoding="utf-8")
        for n in range(args.reingests):
            doc.write_text(original + f"\n<!-- edit {n} -->\nBPOの説明を見直しました（第{n}版）。\n", encoding="utf-8")
            subprocess.run(ingest, env=env, cwd=ROOT, check=True, capture_output=True)
        done.set()

    t0 = time.monotonic()
    threading.Thread(target=owner, daemon=True).start()
    busy, busy_errors, generations = run_phase(assistant, args.sessions, done.is_set)
    wall = time.monotonic() - t0
    shutil.rmtree(tmp, ignore_errors=True)

    for name, lat, errs in (("no ingest", quiet, quiet_errors), ("re-ingesting", busy, busy_errors)):
        print(f"{name:13s} answers={len(lat):5d} errors={len(errs):3d} p50={percentile(lat, 0.5):7.1f} ms "
              f"p95={percentile(lat, 0.95):7.1f} ms")
    print(f"re-ingests={args.reingests} in {wall:.0f} s; generations served={len(generations)}; "
          f"p95 ratio={percentile(busy, 0.95) / percentile(quiet, 0.95):.2f} (target ≤ 1.5)")
    for e in (quiet_errors + busy_errors)[:5]:
        print("  error:", e)


if __name__ == "__main__":
    main()
