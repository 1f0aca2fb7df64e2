"""Soak test of the chat's memory: many short sessions, then the server's RSS once they have left.

    .venv/bin/python benchmarks/soak.py                                   # 5,000 questions from 500 sessions
    .venv/bin/python benchmarks/soak.py --questions 500 --sessions 50     # a quick run
    .venv/bin/python benchmarks/soak.py --data-dir /tmp/idx --idle 60 --concurrency 8
    nice -n 10 .venv/bin/python -u benchmarks/soak.py --data-dir /tmp/idx --idle 30 --rounds 2   # 10,000 questions

It starts the real chat server (`python -m bpo_assistant.cli chat`) on a free 127.0.0.1 port, with the server's
idle-session limit set to --idle seconds (BPO_CHAT_SESSION_IDLE_S), warms it up, and prints its RSS at start.
Then --sessions gradio_client sessions (--concurrency at a time, no pause between questions) each ask
questions/sessions questions, keeping their chat history on the server; RSS is printed after them. The clients
close and the benchmark waits until the server has had time to drop idle sessions (--idle plus one sweep), then
prints the RSS after they left, the growth over the start, and PASS when it is at most --target-mb.

--rounds N repeats the sessions and their leaving N times, printing RSS after each: growth that stops between
rounds is a plateau (caches, the allocator's working set), growth that goes on with every round is a leak. Each
"after they left" line says where RSS grew, by kind of mapping (glibc's main heap, its other arenas, other
anonymous memory, mapped files). --env NAME=VALUE sets a variable in the server's environment (an allocator
knob, e.g. PYTHONMALLOC=malloc or MALLOC_ARENA_MAX=1).

--chat-only soaks the Gradio app alone (build_app() launched by Gradio, no HTTP API, no question log), to tell
the chat's own growth from that of what `chat` serves beside it; --server-cmd soaks any other launch (it gets
the port as its last argument).

Every step is bounded (per-question timeout, overall deadline); the server is stopped on exit. Exit code 0 on
PASS with no errors, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bpo_assistant.settings import OFFLINE_ENV, Settings  # noqa: E402

for _k, _v in OFFLINE_ENV.items():  # gradio_client reads GRADIO_ANALYTICS_ENABLED too
    os.environ.setdefault(_k, _v)

from load import QUESTIONS, ask_chat, chat_client, start_server, stop_server, wait_up  # noqa: E402 - the load benchmark's server handling and questions


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def rss_parts(pid: int) -> dict[str, float]:
    """RSS split as the kernel counts it (MB): anon is the process's own memory (what a leak grows); file is
    pages of mapped files (libraries, the tokeniser's dictionary), clean, shared with every process mapping
    them and dropped by the kernel under pressure: it grows when any process reads more of those files."""
    parts = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile", "RssShmem"):
                parts[name[3:].lower()] = int(value.split()[0]) / 1024
    return parts


def load_avg() -> str:
    """The machine's 1-minute load average: the soak shares its cores, and a figure means little without it."""
    return f"{os.getloadavg()[0]:.1f}"


def mappings(pid: int) -> dict[tuple[int, str], int]:
    """Resident KiB per mapping of the process ((start address, kind) -> KiB), from /proc/PID/smaps."""
    found: dict[tuple[int, str], int] = {}
    key = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else ""
                start = int(head[0].split("-")[0], 16)
                # glibc maps each arena other than the main one 64 MiB-aligned; other anonymous memory is
                # Python's obmalloc arenas, large blocks, thread stacks and the embedder's buffers.
                kind = ("heap" if name == "[heap]" else "stack" if name.startswith("[stack") else
                        "file" if name.startswith("/") else "other" if name else
                        "arenas" if start % (64 << 20) == 0 else "anon")
                key = (start, kind)
            elif head[0] == "Rss:" and key is not None:
                found[key] = found.get(key, 0) + int(head[1])
    return found


def growth_by_kind(before: dict, after: dict) -> str:
    """Where RSS grew: MB per kind of mapping (heap = glibc's main arena, arenas = its others, anon = the rest
    of anonymous memory), and how many mappings are new."""
    kinds: dict[str, float] = {}
    for key in set(before) | set(after):
        kinds[key[1]] = kinds.get(key[1], 0.0) + (after.get(key, 0) - before.get(key, 0)) / 1024
    new = len(set(after) - set(before))
    return ", ".join(f"{k} {v:+.1f}" for k, v in sorted(kinds.items(), key=lambda kv: -abs(kv[1]))) + \
        f" MB; {new} new mappings, {len(set(before) - set(after))} gone"


def serve_chat_only(port: int) -> int:
    """The Gradio app as build_app() makes it, launched by Gradio itself over the data dir's index."""
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.sessions import limit_malloc_arenas

    limit_malloc_arenas()  # as serve() does
    settings = Settings()
    demo = build_app(Assistant.from_settings(settings), settings)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=False, **launch_kwargs(settings))
    return 0


def sweep_wait(idle: float) -> float:
    """Long enough for the server to drop a session that just went idle: it sweeps every idle/4 (1-60 s)."""
    return idle + min(60.0, max(1.0, idle / 4)) + 5


def run_session(url: str, n: int, offset: int, timeout: float, stop: threading.Event) -> tuple[int, list[str]]:
    """One session (its own gradio_client Client, so the server keeps its history): n questions, then it leaves."""
    answered, errors = 0, []
    try:
        with chat_client(url) as client:
            for i in range(n):
                if stop.is_set():
                    errors.append("deadline")
                    break
                question = QUESTIONS[(offset + i) % len(QUESTIONS)]
                try:
                    ask_chat(client, question, timeout)
                    answered += 1
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{question}: {type(exc).__name__}: {str(exc)[:200]}")
    except Exception as exc:  # noqa: BLE001 - the client could not connect
        errors.append(f"connect: {type(exc).__name__}: {exc}")
    return answered, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=5000, help="questions in all")
    ap.add_argument("--sessions", type=int, default=500, help="sessions asking them (each asks questions/sessions)")
    ap.add_argument("--concurrency", type=int, default=8, help="sessions at once")
    ap.add_argument("--idle", type=float, default=60.0, help="the server's idle-session limit for this run (s)")
    ap.add_argument("--data-dir", help="index/data dir (default: BPO_DATA_DIR or .bpo)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-question timeout (s)")
    ap.add_argument("--deadline", type=float, default=3600.0, help="overall limit for the sessions (s)")
    ap.add_argument("--startup", type=float, default=600.0, help="limit for server start incl. indexing (s)")
    ap.add_argument("--target-mb", type=float, default=20.0, help="allowed RSS growth after the sessions left")
    ap.add_argument("--server-cmd", help="another server to soak, started as CMD PORT (default: bpo-assistant chat)")
    ap.add_argument("--chat-only", action="store_true", help="soak build_app() launched alone")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the sessions (and their leaving) this often: growth that stops between rounds is "
                         "a plateau, growth that goes on is a leak")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set in the server's environment (repeatable), e.g. MALLOC_ARENA_MAX=1")
    ap.add_argument("--serve-chat-only", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the --chat-only server
    args = ap.parse_args(argv)
    if args.serve_chat_only:
        return serve_chat_only(args.serve_chat_only)
    if args.chat_only:
        args.server_cmd = f"{sys.executable} {Path(__file__).resolve()} --serve-chat-only"
    per_session = max(1, args.questions // max(1, args.sessions))

    extra_env = {"BPO_CHAT_SESSION_IDLE_S": str(args.idle)}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            ap.error(f"--env wants NAME=VALUE, got {item!r}")
        extra_env[name] = value
    shown = "".join(f", {k}={v}" for k, v in extra_env.items() if k != "BPO_CHAT_SESSION_IDLE_S")
    proc, url = start_server("soak", args.data_dir, extra_env, args.server_cmd.split() if args.server_cmd else None,
                             f", idle limit {args.idle:.0f}s{shown}")
    stop = threading.Event()
    errors: list[str] = []
    lefts: list[float] = []
    try:
        t_start = time.monotonic()
        wait_up(url, proc, t_start + args.startup)
        up = time.monotonic() - t_start
        print(f"server up after {up:.1f}s, RSS {rss_mb(proc.pid):.1f} MB; warming up", flush=True)
        # Warm-up at the soak's concurrency, and its sessions dropped again: first-use costs (tokeniser, caches,
        # the worker threads and their allocator arenas) are the same for any number of sessions, not growth.
        with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
            list(pool.map(lambda k: run_session(url, len(QUESTIONS), k, args.timeout, stop),
                          range(max(1, args.concurrency))))
        time.sleep(sweep_wait(args.idle))
        start, maps0, parts0 = rss_mb(proc.pid), mappings(proc.pid), rss_parts(proc.pid)
        print(f"RSS at start (warmed up, warm-up sessions dropped) {start:.1f} MB (anon {parts0['anon']:.1f}, "
              f"file {parts0['file']:.1f}; load {load_avg()})", flush=True)

        timer = threading.Timer(args.deadline, stop.set)
        timer.daemon = True
        timer.start()
        peak = start
        for rnd in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
                results = list(pool.map(lambda k: run_session(url, per_session, k, args.timeout, stop),
                                        range(args.sessions)))
            wall = time.perf_counter() - t0
            after = rss_mb(proc.pid)
            peak = max(peak, after)
            answered = sum(a for a, _ in results)
            errors += [e for _, errs in results for e in errs]
            label = f"round {rnd}/{args.rounds}: " if args.rounds > 1 else ""
            print(f"{label}{args.sessions} sessions x {per_session} questions: answered {answered}/"
                  f"{args.sessions * per_session}, errors {len(errors)}, {wall:.0f}s ({answered / wall:.1f} q/s); "
                  f"RSS after {after:.1f} MB ({after - start:+.1f}, load {load_avg()})", flush=True)

            wait = sweep_wait(args.idle)
            print(f"sessions closed; waiting {wait:.0f}s for the server to drop them", flush=True)
            time.sleep(wait)
            lefts.append(rss_mb(proc.pid))
            parts = rss_parts(proc.pid)
            print(f"{label}RSS after the sessions left {lefts[-1]:.1f} MB ({lefts[-1] - start:+.1f} over the start"
                  f"{f', {lefts[-1] - lefts[-2]:+.1f} over the last round' if len(lefts) > 1 else ''}; anon "
                  f"{parts['anon'] - parts0['anon']:+.1f}, file {parts['file'] - parts0['file']:+.1f}; load "
                  f"{load_avg()}); by mapping: {growth_by_kind(maps0, mappings(proc.pid))}", flush=True)
        timer.cancel()
    finally:
        stop.set()
        stop_server(proc)

    left = lefts[-1] if lefts else float("nan")
    growth = left - start
    print(f"RSS after the sessions left {left:.1f} MB: growth {growth:+.1f} MB over the start "
          f"(peak growth {peak - start:+.1f} MB)")
    for e in errors[:20]:
        print("error:", e)
    ok = not errors and growth <= args.target_mb
    print(f"target: 0 errors, growth <= {args.target_mb:.0f} MB after the sessions left -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
