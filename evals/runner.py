"""Run regression suites against anything with `.ask(question, history) -> Answer`, and the `bpo-assistant eval`
command.

Each case runs in a daemon worker thread with a per-case timeout; a crash or a timeout fails that case with the
reason and the run goes on. (Python cannot kill a thread: a timed-out ask keeps running in the background until
it returns, and being a daemon it never blocks exit.)
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

from . import metrics

DEFAULT_TIMEOUT_S = 30.0


def call_with_timeout(fn, timeout_s: float):
    """(value, error, timed_out, elapsed_ms); error is the exception raised by fn, if any."""
    box: dict = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported as the case's failure reason
            box["error"] = exc
        finally:
            done.set()

    start = time.perf_counter()
    threading.Thread(target=work, name="eval-case", daemon=True).start()
    finished = done.wait(timeout_s)
    elapsed = (time.perf_counter() - start) * 1000
    return box.get("value"), box.get("error"), not finished, elapsed


def run_case(case, ask, timeout_s: float = DEFAULT_TIMEOUT_S, sections=None, topics=None) -> dict:
    answer, error, timed_out, elapsed = call_with_timeout(lambda: ask(case.question, case.history), timeout_s)
    result = {
        "id": case.id, "question": case.question, "lang": case.lang,
        "topic": metrics.case_topic(case.expect, topics or {}),
        "passed": False, "reasons": [], "refused": False, "answer": "", "citations": [], "retrieved": [],
        "kind": "", "latency_ms": round(elapsed, 1), "error": None,
        "expect_refuse": case.expect.refuse, "has_doc_ids": bool(case.expect.doc_ids), "rank": None,
        "citations_valid": [],
    }
    if timed_out:
        result["error"] = f"timed out after {timeout_s:g} s"
        result["reasons"] = [result["error"]]
        return result
    if error is None and not all(hasattr(answer, a) for a in ("text", "refused", "citations", "retrieved")):
        error = TypeError(f"ask returned {type(answer).__name__}, not an Answer")
    if error is not None:
        result["error"] = f"{type(error).__name__}: {error}"
        result["reasons"] = [f"crashed: {result['error']}"]
        result["traceback"] = "".join(traceback.format_exception(error)[-6:])
        return result
    result.update(
        reasons=metrics.check_case(case.expect, answer), refused=bool(answer.refused), answer=answer.text or "",
        citations=[c.to_json() for c in answer.citations], retrieved=list(answer.retrieved),
        kind=getattr(answer, "kind", ""), citations_valid=metrics.citation_checks(answer, sections),
        rank=metrics.first_relevant_rank(answer.retrieved, case.expect.doc_ids) if case.expect.doc_ids else None,
    )
    result["passed"] = not result["reasons"]
    return result


def run_suite(cases, ask, index=None, timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True,
              desc: str = "eval") -> dict:
    """Score every case; returns the summary metrics plus `results` (one dict per case, in suite order)."""
    from tqdm import tqdm

    chunks = getattr(index, "chunks", None)
    sections = metrics.existing_sections(chunks)
    topics = metrics.doc_topics(chunks)
    results = []
    bar = tqdm(cases, desc=desc, unit="case", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    failed = 0
    for case in bar:
        r = run_case(case, ask, timeout_s, sections, topics)
        failed += not r["passed"]
        bar.set_postfix(failed=failed, refresh=False)
        results.append(r)
    bar.close()
    summary = metrics.aggregate(results)
    summary["results"] = results
    return summary


def summary_only(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "results"}


SIDE_BY_SIDE = ("cases", "passed", "pass_rate", "answerable_cases", "answerable_passed", "answerable_pass_rate",
                "refusal_precision", "refusal_recall", "citation_validity")


def compare_pipelines(ours: dict, peer: dict) -> dict:
    """The peer's summary, a side-by-side table of both and ratios ours / peer.

    Ratios: pass rate (overall and on answerable cases, expect.refuse false; >1 means we pass more) and p50
    latency (>1 means we are slower); None when the peer's figure is 0 or missing.
    """
    from .baseline_pipeline import DESCRIPTION

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    def figures(run):
        return {k: run.get(k) for k in SIDE_BY_SIDE} | {"latency_p50_ms": run["latency_ms"]["p50"]}

    out = summary_only(peer)
    out["description"] = DESCRIPTION
    out["side_by_side"] = {"ours": figures(ours), "peer": figures(peer)}
    out["ratios"] = {
        "pass_rate_ratio": ratio(ours["pass_rate"], peer["pass_rate"]),
        "answerable_pass_ratio": ratio(ours.get("answerable_pass_rate"), peer.get("answerable_pass_rate")),
        "latency_p50_ratio": ratio(ours["latency_ms"]["p50"], peer["latency_ms"]["p50"]),
        "definition": "ours / peer",
    }
    return out


def make_assistant(settings, progress: bool = True):
    """The real assistant over a fresh-enough index (tests monkeypatch this or pass assistant_factory)."""
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.embeddings import make_embedder
    from bpo_assistant.ingest.pipeline import ensure_index

    embedder = make_embedder(settings.embedder, settings)  # loaded once: ingest, the assistant and the peer pipeline share it
    ensure_index(settings, embedder=embedder, progress=progress)
    return Assistant.from_settings(settings, embedder=embedder)


def make_peer_pipeline(settings, embedder=None):
    from .baseline_pipeline import PeerPipeline

    return PeerPipeline(settings, embedder=embedder)


def cli_eval(settings, args, *, assistant_factory=None, peer_factory=None) -> int:
    from .cli import run_cli, wants_progress

    if assistant_factory is None:
        # a first run builds the index before the cases: its embedding bar follows the same TTY rule
        progress = wants_progress(args)
        assistant_factory = lambda s: make_assistant(s, progress=progress)  # noqa: E731
    return run_cli(settings, args, assistant_factory, peer_factory or make_peer_pipeline)
