"""What the question log costs an answer: warm p50/p95 of Assistant.ask over the dev suite with and without the
log attached (rounds interleaved, so a busy machine loads both sides alike), and the observer's own time.

Usage: .venv/bin/python benchmarks/question_log.py [--suite evals/suites/dev.jsonl] [--rounds 3]
The log goes to a throw-away SQLite file, never to the real one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.answer import indexed_settings_and_cases, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default=str(ROOT / "evals/suites/dev.jsonl"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings, cases = indexed_settings_and_cases(args.suite)
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.owners.qlog import QuestionLog

    assistant = Assistant.from_settings(settings)
    tmp = tempfile.mkdtemp(prefix="qlog-bench-")
    qlog = QuestionLog(settings.model_copy(update={"database_url": f"sqlite:///{tmp}/bench.sqlite"}), "bench")
    observer_ms: list[float] = []

    def timed(event):
        t = time.perf_counter()
        qlog(event)
        observer_ms.append((time.perf_counter() - t) * 1000)

    assistant.ask(cases[0]["question"])  # warm-up
    without, with_log = [], []
    for _ in range(args.rounds):
        for logging_on, out in ((False, without), (True, with_log)):
            assistant.observers[:] = [timed] if logging_on else []
            for c in cases:
                t = time.perf_counter()
                assistant.ask(c["question"], c.get("history", []))
                out.append((time.perf_counter() - t) * 1000)
    qlog.close()
    for name, lat in (("without log", without), ("with log", with_log)):
        print(f"{name:12s} n={len(lat)} p50={statistics.median(lat):.1f} ms p95={percentile(lat, 0.95):.1f} ms")
    print(f"observer     n={len(observer_ms)} p50={statistics.median(observer_ms):.3f} ms "
          f"p95={percentile(observer_ms, 0.95):.3f} ms (the call on the answering thread; the write is a thread)")


if __name__ == "__main__":
    main()
