"""Regression gate: compare a run with evals/baseline.json.

Baseline file: {"pass_rate", "citation_validity", "passing_ids": [...], "cases", "created", "embedder"}.
The gate fails when
  * the pass rate drops by more than MAX_PASS_RATE_DROP (2 points),
  * any case that passed in the baseline now fails (its id is listed), or
  * citation_validity < 1.0 (a citation pointing at a section the answer did not retrieve, or that does not exist).
Baseline cases absent from this run (e.g. a removed case or another suite) are listed as warnings, not failures.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

MAX_PASS_RATE_DROP = 0.02
_EPS = 1e-9


class GateError(OSError):
    """Baseline file missing, unreadable or malformed (exit code 2)."""


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"baseline file not found: {path} (create it with --update-baseline)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"cannot read baseline {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise GateError(f"baseline {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GateError(f"baseline {path} must be a JSON object")
    problems = []
    if not isinstance(data.get("pass_rate"), (int, float)) or isinstance(data.get("pass_rate"), bool):
        problems.append("'pass_rate' must be a number")
    if not isinstance(data.get("passing_ids"), list) or not all(isinstance(i, str) for i in data["passing_ids"]):
        problems.append("'passing_ids' must be a list of case ids")
    if problems:
        raise GateError(f"baseline {path}: " + "; ".join(problems))
    return data


def compare(run: dict, baseline: dict, embedder: str | None = None) -> dict:
    """{ok, reasons, regressed_ids, warnings}; `run` is runner.run_suite's result (needs results)."""
    reasons: list[str] = []
    warnings: list[str] = []
    by_id = {r["id"]: r for r in run["results"]}
    old_rate = float(baseline["pass_rate"])
    new_rate = float(run["pass_rate"])
    if new_rate < old_rate - MAX_PASS_RATE_DROP - _EPS:
        reasons.append(
            f"pass rate dropped from {old_rate:.1%} to {new_rate:.1%} "
            f"(more than {MAX_PASS_RATE_DROP * 100:.0f} points)"
        )
    regressed = [i for i in baseline["passing_ids"] if i in by_id and not by_id[i]["passed"]]
    if regressed:
        reasons.append(f"{len(regressed)} previously passing case(s) now fail: {', '.join(regressed)}")
    validity = run.get("citation_validity")
    if validity is not None and validity < 1.0 - _EPS:
        reasons.append(f"citation_validity {validity:.4f} < 1.0")
    missing = [i for i in baseline["passing_ids"] if i not in by_id]
    if missing:
        warnings.append(f"{len(missing)} baseline passing case(s) not in this run: {', '.join(missing[:20])}"
                        + (" ..." if len(missing) > 20 else ""))
    if embedder and baseline.get("embedder") and baseline["embedder"] != embedder:
        warnings.append(f"baseline was made with embedder {baseline['embedder']!r}, this run uses {embedder!r}")
    return {
        "ok": not reasons,
        "reasons": reasons,
        "regressed_ids": regressed,
        "regressed": [{"id": i, "reasons": by_id[i]["reasons"]} for i in regressed],
        "warnings": warnings,
        "baseline": {"pass_rate": old_rate, "citation_validity": baseline.get("citation_validity"),
                     "cases": baseline.get("cases"), "created": baseline.get("created")},
    }


def make_baseline(run: dict, embedder: str = "") -> dict:
    return {
        "pass_rate": run["pass_rate"],
        "citation_validity": run["citation_validity"],
        "passing_ids": sorted(r["id"] for r in run["results"] if r["passed"]),
        "cases": run["cases"],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embedder": embedder,
    }


def write_baseline(path: str | Path, run: dict, embedder: str = "") -> dict:
    """Atomic (bpo_assistant.atomic): an interrupted `eval --update-baseline` never leaves half a baseline."""
    from bpo_assistant import atomic

    data = make_baseline(run, embedder)
    atomic.write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return data
