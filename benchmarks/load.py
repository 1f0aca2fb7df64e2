"""Load test of the chat: N concurrent sessions × M questions through gradio_client over loopback.

    .venv/bin/python benchmarks/load.py                      # 50 sessions × 10 questions, the default data dir
    .venv/bin/python benchmarks/load.py --data-dir /tmp/idx --sessions 50 --questions 10 --think 2

It starts `python -m bpo_assistant.cli chat` on a free 127.0.0.1 port in a subprocess (building the index first
if the data dir has none), waits until it answers, runs the sessions from a thread pool (one gradio_client
Client per session, so each keeps its own chat history on the server), then stops the server. Everything is
bounded: per-question timeout, overall deadline, and the server is terminated on exit. Prints errors, p50/p95/max
latency and throughput; exit code 0 when there were no errors and p95 <= --target-p95 seconds, 1 otherwise.

Latency is measured per question, from submit to the final streamed message. Sessions pause --think seconds
(uniformly 0.5×–1.5×, like a person reading the answer) between questions; --think 0 is a closed-loop stress test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bpo_assistant.settings import OFFLINE_ENV, Settings  # noqa: E402

for _k, _v in OFFLINE_ENV.items():  # gradio_client reads GRADIO_ANALYTICS_ENABLED too
    os.environ.setdefault(_k, _v)

# Ten questions per session: definitions, a comparison, follow-ups that need the history, English, a refusal.
QUESTIONS = [
    "BPOとは何ですか？",
    "BPOを導入するメリットは？",
    "請負契約とは？",
    "じゃあ準委任とはどう違う？",
    "BPOとITOの違いは？",
    "委託先はどうやって選べばいい？",
    "BPOの注意点は？",
    "What is BPO?",
    "今日の天気は？",
    "DXとBPOの関係は？",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:  # noqa: S310 - loopback only
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("server did not come up in time")


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc), or nan."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def start_server(name: str, data_dir: str | None, extra_env: dict | None = None, cmd: list[str] | None = None,
                 note: str = "") -> tuple[subprocess.Popen, str]:
    """`bpo-assistant chat` (or `cmd` + a port) on a free loopback port, its output in a temp log; (process, url)."""
    env = dict(os.environ, **OFFLINE_ENV)
    env.pop("BPO_AUTH_FILE", None)  # the benchmarks measure answering and sessions, not the login page
    env.update(extra_env or {})
    if data_dir:
        env["BPO_DATA_DIR"] = str(Path(data_dir).resolve())
    shown = Path(env.get("BPO_DATA_DIR") or Settings().data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tempfile.NamedTemporaryFile("w+", prefix=f"bpo-{name}-server-", suffix=".log", delete=False)
    print(f"starting server on {url} (data dir {shown}{note}, log {log.name})", flush=True)
    server = cmd or [sys.executable, "-m", "bpo_assistant.cli", "chat", "--host", "127.0.0.1", "--port"]
    proc = subprocess.Popen([*server, str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not gone within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def chat_client(url: str):
    """One gradio_client session (the server keeps its history), closed however the session ends."""
    from gradio_client import Client

    # Plain HTTP on loopback: no TLS is involved, and ssl_verify=False spares httpx from loading the CA bundle
    # for every request (~70 ms of CPU each time), which would otherwise make the load client the bottleneck.
    client = Client(url, verbose=False, ssl_verify=False, analytics_enabled=False)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def ask_chat(client, question: str, timeout: float) -> str:
    """The chat's answer to `question`; an empty answer is an error like any other."""
    result = client.submit(question, api_name="/chat").result(timeout=timeout)
    if not result or not str(result).strip():
        raise ValueError("empty answer")
    return str(result)


def run_session(url: str, n_questions: int, think: float, timeout: float, stop: threading.Event,
                seed: int) -> tuple[list[float], list[str]]:
    rng = random.Random(seed)
    latencies: list[float] = []
    errors: list[str] = []
    try:
        with chat_client(url) as client:
            for i in range(n_questions):
                if stop.is_set():
                    errors.append("deadline")
                    break
                question = QUESTIONS[i % len(QUESTIONS)]
                t0 = time.perf_counter()
                try:
                    ask_chat(client, question, timeout)
                    latencies.append(time.perf_counter() - t0)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{question}: {type(exc).__name__}: {str(exc)[:200]}")
                if think > 0 and i < n_questions - 1:
                    stop.wait(think * rng.uniform(0.5, 1.5))
    except Exception as exc:  # noqa: BLE001 - the client could not connect
        errors.append(f"connect: {type(exc).__name__}: {exc}")
    return latencies, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--think", type=float, default=2.0, help="mean pause between a session's questions (s)")
    ap.add_argument("--ramp", type=float, default=5.0, help="spread session starts over this many seconds")
    ap.add_argument("--data-dir", help="index/data dir (default: BPO_DATA_DIR or .bpo)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-question timeout (s)")
    ap.add_argument("--deadline", type=float, default=600.0, help="overall limit for the sessions (s)")
    ap.add_argument("--startup", type=float, default=600.0, help="limit for server start incl. indexing (s)")
    ap.add_argument("--target-p95", type=float, default=1.0)
    args = ap.parse_args(argv)

    proc, url = start_server("load", args.data_dir)
    stop = threading.Event()
    try:
        t_start = time.monotonic()
        wait_up(url, proc, t_start + args.startup)
        print(f"server up after {time.monotonic() - t_start:.1f}s; warming up", flush=True)
        run_session(url, 2, 0, args.timeout, stop, 0)  # first-query costs are not part of the figures

        timer = threading.Timer(args.deadline, stop.set)
        timer.daemon = True
        timer.start()
        t0 = time.perf_counter()
        server_cpu0, client_cpu0 = cpu_seconds(proc.pid), time.process_time()

        def one(k: int):
            stop.wait(args.ramp * k / max(1, args.sessions))
            return run_session(url, args.questions, args.think, args.timeout, stop, k + 1)

        with ThreadPoolExecutor(max_workers=args.sessions) as pool:
            results = list(pool.map(one, range(args.sessions)))
        wall = time.perf_counter() - t0
        server_cpu, client_cpu = cpu_seconds(proc.pid) - server_cpu0, time.process_time() - client_cpu0
        timer.cancel()
    finally:
        stop.set()
        stop_server(proc)

    latencies = [x for lat, _ in results for x in lat]
    errors = [e for _, errs in results for e in errs]
    total = args.sessions * args.questions
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(f"sessions={args.sessions} questions/session={args.questions} think={args.think}s "
          f"answered={len(latencies)}/{total} errors={len(errors)} wall={wall:.1f}s "
          f"throughput={len(latencies) / wall:.1f} q/s")
    if latencies:
        print(f"latency p50={p50 * 1000:.0f} ms  p95={p95 * 1000:.0f} ms  max={max(latencies) * 1000:.0f} ms  "
              f"mean={statistics.fmean(latencies) * 1000:.0f} ms")
    print(f"cpu: server {server_cpu:.1f}s ({server_cpu / max(1, len(latencies)) * 1000:.0f} ms/question), "
          f"load client {client_cpu:.1f}s, on {os.cpu_count()} cores")
    for e in errors[:20]:
        print("error:", e)
    ok = not errors and len(latencies) == total and p95 <= args.target_p95
    print(f"target: 0 errors, p95 <= {args.target_p95:.2f} s -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
