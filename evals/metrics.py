"""Pass rules for one case and the aggregate metrics of a run. Pure functions, no model.

Text comparisons use bpo_assistant.text.squash (NFKC, lower case, whitespace removed), so full-width "ＳＬＡ",
"sla" and "S L A" all match "SLA".
"""

from __future__ import annotations

import re

from bpo_assistant.stats import percentile  # noqa: F401 - the eval report's p95, shared with the dashboard
from bpo_assistant.text import normalize, squash

DEFAULT_MAX_CHARS = 900
_CHUNK_ID = re.compile(r"^(?P<lang>[^:#]+):(?P<doc>[^#]+)#(?P<section>[^#:]+):(?P<ordinal>\d+):(?P<hash>[^:]*)$")


def answer_chars(text: str) -> int:
    """Length as judged by max_chars: after NFKC, whitespace removed."""
    return sum(1 for ch in normalize(text or "") if not ch.isspace())


def parse_chunk_id(chunk_id: str) -> tuple[str, str, str] | None:
    """'<lang>:<doc_id>#<section_id>:<ordinal>:<hash>' -> (lang, doc_id, section_id); None when not in that form."""
    m = _CHUNK_ID.match(chunk_id or "")
    return (m["lang"], m["doc"], m["section"]) if m else None


def check_case(expect, answer) -> list[str]:
    """Reasons the answer fails the case's expectations; an empty list means it passes.

    When an answer was expected but the system refused, only the refusal (and forbid) reasons are given: the
    missing facts and citations follow from the refusal and would only repeat it.
    """
    reasons: list[str] = []
    text = answer.text or ""
    if answer.refused != expect.refuse:
        reasons.append("expected refusal, got an answer" if expect.refuse else "expected an answer, got a refusal")
    squashed = squash(text)
    for needle in expect.forbid:
        if squash(needle) and squash(needle) in squashed:
            reasons.append(f"forbidden string {needle!r} present")
    if expect.refuse or answer.refused:
        return reasons
    if expect.doc_ids:
        cited = list(dict.fromkeys(c.doc_id for c in answer.citations))
        if not any(d in expect.doc_ids for d in cited):
            reasons.append(f"no citation from doc_ids {list(expect.doc_ids)}; cited {cited}")
    for group in expect.facts:
        if not any(squash(alt) in squashed for alt in group):
            reasons.append(f"missing fact group {list(group)}")
    limit = expect.max_chars or DEFAULT_MAX_CHARS
    n = answer_chars(text)
    if n > limit:
        reasons.append(f"answer {n} chars > {limit}")
    return reasons


def existing_sections(chunks: dict | None) -> set[tuple[str, str, str]] | None:
    if chunks is None:
        return None
    return {(c.lang, c.doc_id, c.section_id) for c in chunks.values()}


def citation_checks(answer, sections: set | None) -> list[bool]:
    """Per citation: it points at a section the answer retrieved, and (when the index is known) that exists."""
    retrieved = {parse_chunk_id(cid) for cid in answer.retrieved} - {None}
    out = []
    for c in answer.citations:
        key = (c.lang, c.doc_id, c.section_id)
        out.append(key in retrieved and (sections is None or key in sections))
    return out


def first_relevant_rank(retrieved, doc_ids) -> int | None:
    """1-based rank of the first retrieved document in doc_ids (chunk ids mapped to doc ids, duplicates collapsed)."""
    docs = []
    for cid in retrieved:
        parsed = parse_chunk_id(cid)
        doc = parsed[1] if parsed else cid
        if doc not in docs:
            docs.append(doc)
    for rank, doc in enumerate(docs, 1):
        if doc in doc_ids:
            return rank
    return None


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _group(results, key) -> dict:
    groups: dict[str, dict] = {}
    for r in results:
        g = groups.setdefault(r[key], {"cases": 0, "passed": 0})
        g["cases"] += 1
        g["passed"] += int(r["passed"])
    for g in groups.values():
        g["pass_rate"] = _ratio(g["passed"], g["cases"])
    return dict(sorted(groups.items()))


def aggregate(results: list[dict]) -> dict:
    """Summary metrics over per-case results (as built by runner.run_case).

    Each result carries: passed, refused, expect_refuse, latency_ms, citations_valid (list of bools), rank
    (None or int) and has_doc_ids, topic, lang. Undefined ratios (nothing to divide by) are None, except
    citation_validity, which is 1.0 when there are no citations. "Answerable" cases are those with
    expect.refuse false.
    """
    n = len(results)
    passed = sum(r["passed"] for r in results)
    tp = sum(1 for r in results if r["refused"] and r["expect_refuse"])
    predicted = sum(1 for r in results if r["refused"])
    actual = sum(1 for r in results if r["expect_refuse"])
    checks = [ok for r in results for ok in r["citations_valid"]]
    ranked = [r["rank"] for r in results if r["has_doc_ids"]]
    latencies = [r["latency_ms"] for r in results]
    answerable = [r for r in results if not r["expect_refuse"]]
    answerable_passed = sum(r["passed"] for r in answerable)
    return {
        "cases": n,
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else 0.0,
        "answerable_cases": len(answerable),
        "answerable_passed": answerable_passed,
        "answerable_pass_rate": _ratio(answerable_passed, len(answerable)),
        "refusal_precision": _ratio(tp, predicted),
        "refusal_recall": _ratio(tp, actual),
        "citation_validity": _ratio(sum(checks), len(checks)) if checks else 1.0,
        "citations": len(checks),
        "recall_at_1": _ratio(sum(1 for k in ranked if k is not None and k <= 1), len(ranked)),
        "recall_at_3": _ratio(sum(1 for k in ranked if k is not None and k <= 3), len(ranked)),
        "mrr": round(sum(1.0 / k for k in ranked if k) / len(ranked), 4) if ranked else None,
        "retrieval_cases": len(ranked),
        "errors": sum(1 for r in results if r.get("error")),
        "latency_ms": {
            "p50": _round(percentile(latencies, 50)),
            "p95": _round(percentile(latencies, 95)),
            "max": _round(max(latencies) if latencies else None),
        },
        "by_topic": _group(results, "topic"),
        "by_lang": _group(results, "lang"),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def case_topic(expect, doc_topics: dict[str, str]) -> str:
    """'refusal' for refusal-expected cases, 'other' without doc_ids, else the first doc's topic."""
    if expect.refuse:
        return "refusal"
    if not expect.doc_ids:
        return "other"
    return doc_topics.get(expect.doc_ids[0], "unknown")


def doc_topics(chunks: dict | None) -> dict[str, str]:
    return {c.doc_id: c.topic for c in (chunks or {}).values()}
