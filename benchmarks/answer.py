"""Answer latency: warm p50/p95 over the dev suite questions, process start to first answer, and the same
for the peer LangChain pipeline (evals/baseline_pipeline.py: hybrid dense + BM25, RRF, top-2, tuned refusal).

Usage: .venv/bin/python benchmarks/answer.py [--suite evals/suites/dev.jsonl]
Targets on 2 cores: p50 ≤ 50 ms, p95 ≤ 150 ms warm; start to first answer ≤ 8 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure(ask, cases) -> list[float]:
    ask(cases[0]["question"], cases[0].get("history", []))  # warm-up
    out = []
    for c in cases:
        t = time.perf_counter()
        ask(c["question"], c.get("history", []))
        out.append((time.perf_counter() - t) * 1000)
    return out


def start_to_first_answer() -> float:
    code = ("import time; t=time.perf_counter(); from bpo_assistant.settings import Settings, set_offline_env; "
            "set_offline_env(); from bpo_assistant.assistant import Assistant; "
            "a=Assistant.from_settings(Settings()); a.ask('BPOとは何ですか？'); print(time.perf_counter()-t)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t


def indexed_settings_and_cases(suite: str):
    """Offline env, the index brought up to date, and the suite's questions: what every answer benchmark starts from."""
    from bpo_assistant.settings import Settings, set_offline_env

    set_offline_env()
    from bpo_assistant.ingest.pipeline import ensure_index

    settings = Settings()
    ensure_index(settings)
    return settings, load_cases(suite)


def load_cases(suite: str) -> list[dict]:
    """A suite's cases that ask one question (others hold conversations or malformed input)."""
    cases = [json.loads(line) for line in Path(suite).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [c for c in cases if isinstance(c.get("question"), str)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default=str(ROOT / "evals/suites/dev.jsonl"))
    args = parser.parse_args()
    settings, cases = indexed_settings_and_cases(args.suite)
    from bpo_assistant.assistant import Assistant

    ours = Assistant.from_settings(settings)
    lat = measure(lambda q, h: ours.ask(q, h), cases)
    print(f"ours:     n={len(lat)} p50={statistics.median(lat):.1f} ms p95={percentile(lat, 0.95):.1f} ms")
    print(f"ours:     process start to first answer {start_to_first_answer():.2f} s")
    from bpo_assistant.evals.baseline_pipeline import PeerPipeline

    t = time.perf_counter()
    peer = PeerPipeline(settings, embedder=ours.embedder)
    build_s = time.perf_counter() - t
    lat_n = measure(lambda q, h: peer.ask(q, h), cases)
    print(f"peer:     n={len(lat_n)} p50={statistics.median(lat_n):.1f} ms p95={percentile(lat_n, 0.95):.1f} ms "
          f"(index build {build_s:.1f} s)")


if __name__ == "__main__":
    main()
