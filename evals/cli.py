"""`bpo-assistant eval`: load suites, run them, optionally the peer pipeline, gate, baseline, report, print.

--with-baseline-pipeline also scores the peer pipeline (evals/baseline_pipeline.py: what a capable LangChain
user builds) on the same cases and prints both side by side, with ours / peer on answerable cases.

Exit codes: 0 ok; 1 the gate failed; 2 usage or IO error (missing suite, unreadable baseline, no index...).
With --json exactly one JSON object goes to stdout (on errors too: {"error", "exit_code"}); while the run is in
progress stdout is redirected to stderr, at the file-descriptor level too, so nothing a library prints can
corrupt it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

from . import gate as gates
from .runner import DEFAULT_TIMEOUT_S, call_with_timeout, compare_pipelines, run_suite
from .suite import SuiteError, load_suites

WARMUP_QUESTION = "BPOとは何ですか？"


class UsageError(Exception):
    pass


def default_baseline_path() -> Path:
    from bpo_assistant.settings import REPO_ROOT

    return REPO_ROOT / "evals" / "baseline.json"


@contextlib.contextmanager
def stdout_to_stderr():
    """Python-level and fd-level: C extensions and subprocesses write to fd 1 directly."""
    sys.stdout.flush()
    fd, saved = 1, None
    try:
        err_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        err_fd = 2
    try:
        saved = os.dup(fd)
        os.dup2(err_fd, fd)
    except OSError:  # no fd 1 (e.g. a closed stdout): the Python-level redirect still applies
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def wants_progress(args) -> bool:
    """--progress/--no-progress if given, else whether stderr is a terminal: a redrawn bar in a CI log is a wall
    of carriage returns."""
    flag = getattr(args, "progress", None)
    if flag is not None:
        return bool(flag)
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_cli(settings, args, assistant_factory, peer_factory) -> int:
    as_json = bool(getattr(args, "json", False))
    with stdout_to_stderr():
        try:
            code, payload = _run(settings, args, assistant_factory, peer_factory)
        except UsageError as exc:
            _err(f"eval: error: {exc}")
            code, payload = 2, {"error": str(exc), "exit_code": 2}
        except Exception as exc:  # noqa: BLE001 - a bug must not break the one-JSON-object contract, nor exit 1
            import traceback

            traceback.print_exc(file=sys.stderr)
            code, payload = 2, {"error": f"internal error: {type(exc).__name__}: {exc}", "exit_code": 2}
    if as_json:
        print(json.dumps(payload, ensure_ascii=False, allow_nan=False, default=str), flush=True)
    elif code != 2:
        print(human_summary(payload), flush=True)
    return code


def _run(settings, args, assistant_factory, peer_factory) -> tuple[int, dict]:
    timeout_s = float(getattr(args, "timeout", None) or DEFAULT_TIMEOUT_S)
    suites = list(getattr(args, "suite", None) or [])
    if not suites:
        raise UsageError("no --suite given")
    try:
        cases, problems = load_suites(suites)
    except SuiteError as exc:
        raise UsageError(str(exc)) from None
    for p in problems:
        _err(f"eval: {p}")
    if not cases:
        raise UsageError("no valid cases in " + ", ".join(map(str, suites)))

    baseline = None
    baseline_path = getattr(args, "baseline", None)
    if baseline_path and (Path(baseline_path).exists() or not getattr(args, "update_baseline", False)):
        try:
            baseline = gates.load_baseline(baseline_path)
        except gates.GateError as exc:
            raise UsageError(str(exc)) from None

    try:
        assistant = assistant_factory(settings)
    except Exception as exc:  # noqa: BLE001 - no index, wrong embedder, unreadable kb...
        raise UsageError(f"cannot start the assistant: {type(exc).__name__}: {exc}") from None
    index = getattr(assistant, "index", None)
    # One unscored question first so model loading and tokenizer start-up do not land in case 1's latency.
    _, _, _, warmup_ms = call_with_timeout(lambda: assistant.ask(WARMUP_QUESTION, ()), timeout_s)
    progress = wants_progress(args)
    run = run_suite(cases, assistant.ask, index, timeout_s, progress=progress)
    payload = {**run, "suites": [str(s) for s in suites], "problems": problems, "timeout_s": timeout_s,
               "warmup_ms": round(warmup_ms, 1), "embedder": settings.embedder}
    code = 0

    peer_summary = None
    if getattr(args, "with_baseline_pipeline", False):
        try:
            peer = peer_factory(settings, embedder=getattr(assistant, "embedder", None))
            try:
                # unscored warm-up, as for ours: first-query start-up must not land in case 1's latency
                call_with_timeout(lambda: peer.ask(WARMUP_QUESTION, ()), timeout_s)
                peer_run = run_suite(cases, peer.ask, index, timeout_s, progress=progress, desc="peer")
            finally:
                getattr(peer, "close", lambda: None)()
            peer_summary = payload["baseline_pipeline"] = compare_pipelines(run, peer_run)
        except Exception as exc:  # noqa: BLE001 - reported; our own run still stands
            _err(f"eval: the peer pipeline failed: {type(exc).__name__}: {exc}")
            payload["baseline_pipeline"] = {"error": f"{type(exc).__name__}: {exc}"}
            code = 2

    if baseline is not None:
        result = payload["gate"] = gates.compare(run, baseline, settings.embedder)
        for w in result["warnings"]:
            _err(f"eval: warning: {w}")
        if not result["ok"]:
            _err("eval: GATE FAILED: " + "; ".join(result["reasons"]))
            for item in result["regressed"]:
                _err(f"  regressed {item['id']}: " + "; ".join(item["reasons"]))
            code = 1

    if getattr(args, "update_baseline", False):
        path = Path(baseline_path or default_baseline_path())
        try:
            gates.write_baseline(path, run, settings.embedder)
        except OSError as exc:
            raise UsageError(f"cannot write baseline {path}: {exc}") from None
        payload["baseline_updated"] = str(path)
        _err(f"eval: baseline written to {path}")
        if code == 1:  # updating the baseline is accepting the current state
            _err("eval: the gate failures above were accepted into the new baseline")
            code = 0

    if getattr(args, "report", None):
        from .report import write_report

        try:
            paths = write_report(args.report, run, baseline=baseline, gate=payload.get("gate"),
                                 peer=peer_summary, coverage=_coverage(settings))
        except OSError as exc:
            raise UsageError(f"cannot write the report to {args.report}: {exc}") from None
        payload["report"] = {k: str(v) for k, v in paths.items()}
        _err(f"eval: report written to {paths['html']}")
    payload["exit_code"] = code
    return code, payload


def _coverage(settings) -> dict | None:
    from .coverage import CoverageError, coverage, seed_facts_path

    if not seed_facts_path().exists():
        return None
    try:
        return coverage(settings)
    except (CoverageError, OSError) as exc:
        _err(f"eval: knowledge coverage skipped: {exc}")
        return None


def _fmt(x, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:.1%}" if pct else f"{x:.3f}"


def human_summary(p: dict, max_failures: int = 15) -> str:
    lat = p["latency_ms"]
    lines = [
        f"eval: {p['passed']}/{p['cases']} passed ({_fmt(p['pass_rate'], True)}); "
        f"refusal P {_fmt(p['refusal_precision'])} R {_fmt(p['refusal_recall'])}; "
        f"citation validity {_fmt(p['citation_validity'])}; R@1 {_fmt(p['recall_at_1'])} "
        f"R@3 {_fmt(p['recall_at_3'])} MRR {_fmt(p['mrr'])}; latency p50 {lat['p50']} ms p95 {lat['p95']} ms",
        "  by lang: " + ", ".join(f"{k} {v['passed']}/{v['cases']}" for k, v in p["by_lang"].items()),
        "  by topic: " + ", ".join(f"{k} {v['passed']}/{v['cases']}" for k, v in p["by_topic"].items()),
    ]
    failing = [r for r in p["results"] if not r["passed"]]
    for r in failing[:max_failures]:
        lines.append(f"  FAIL {r['id']}: " + "; ".join(r["reasons"]))
    if len(failing) > max_failures:
        lines.append(f"  ... and {len(failing) - max_failures} more failing case(s)")
    peer = p.get("baseline_pipeline")
    if peer and "error" not in peer:
        lines += peer_lines(p, peer)
    g = p.get("gate")
    if g:
        lines.append("gate: OK" if g["ok"] else "gate: FAILED - " + "; ".join(g["reasons"]))
    return "\n".join(lines)


_PEER_HEAD = ("passed", "pass rate", "answerable", "ans. rate", "refusal P / R", "cit. valid", "p50")
_PEER_WIDTHS = (9, 11, 12, 11, 17, 12, 12)


def peer_lines(ours: dict, peer: dict) -> list[str]:
    """Ours and the peer pipeline side by side, then the ratios ours / peer."""
    from .baseline_pipeline import DESCRIPTION

    def row(name, r):
        cells = (f"{r['passed']}/{r['cases']}", _fmt(r["pass_rate"], True),
                 f"{r.get('answerable_passed', 'n/a')}/{r.get('answerable_cases', 'n/a')}",
                 _fmt(r.get("answerable_pass_rate"), True),
                 f"{_fmt(r['refusal_precision'])} / {_fmt(r['refusal_recall'])}", _fmt(r["citation_validity"]),
                 f"{r['latency_ms']['p50']} ms")
        return f"  {name:<5}" + "".join(f"{c:>{w}}" for c, w in zip(cells, _PEER_WIDTHS))

    ratios = peer["ratios"]
    return [
        f"{peer.get('description', DESCRIPTION)}:",
        f"  {'':<5}" + "".join(f"{h:>{w}}" for h, w in zip(_PEER_HEAD, _PEER_WIDTHS)),
        row("ours", ours),
        row("peer", peer),
        f"  ours/peer: answerable pass rate {_fmt(ratios.get('answerable_pass_ratio'))} (answerable_pass_ratio), "
        f"pass rate {_fmt(ratios['pass_rate_ratio'])}, latency p50 {_fmt(ratios['latency_p50_ratio'])}",
    ]
