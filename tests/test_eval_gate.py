"""The regression gate on the real assistant: the dev suite must not regress against evals/baseline.json.

This is what makes `make test` fail loudly when a change to chunking, weights or content makes answers worse.
"""

from __future__ import annotations

from bpo_assistant.settings import REPO_ROOT
from bpo_assistant.evals.gate import compare, load_baseline
from bpo_assistant.evals.runner import run_suite
from bpo_assistant.evals.suite import load_suite


def test_dev_suite_against_baseline(assistant):
    cases, errors = load_suite(REPO_ROOT / "evals" / "suites" / "dev.jsonl")
    assert not errors, errors
    assert len(cases) >= 120
    run = run_suite(cases, assistant.ask, index=assistant.index, progress=False)
    gate = compare(run, load_baseline(REPO_ROOT / "evals" / "baseline.json"), assistant.embedder.spec)
    failing = {r["id"]: r["reasons"] for r in run["results"] if r["id"] in gate["regressed_ids"]}
    assert gate["ok"], f"{gate['reasons']}\n{failing}"
    assert run["citation_validity"] == 1.0
