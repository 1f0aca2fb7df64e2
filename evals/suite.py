"""Load and validate regression-suite JSONL files.

One case per line:
    {"id": "...", "question": "...", "lang": "ja", "history": [{"role": "user", "content": "..."}],
     "expect": {"refuse": false, "doc_ids": [...], "facts": [[alt, alt], [alt]], "forbid": [...], "max_chars": 900}}

A malformed line is reported as "<file>:<line>: <problem>" and skipped; the other cases still run. A missing or
unreadable file is a usage error (SuiteError). Ids must be unique across all suites of a run: a later duplicate is
reported and skipped (results, baselines and the gate are keyed by id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

EXPECT_KEYS = {"refuse", "doc_ids", "facts", "forbid", "max_chars"}
ROLES = {"user", "assistant"}


class SuiteError(OSError):
    """A suite file that cannot be read at all (exit code 2)."""


@dataclass(frozen=True)
class Expect:
    refuse: bool
    doc_ids: tuple[str, ...] | None = None
    facts: tuple[tuple[str, ...], ...] = ()
    forbid: tuple[str, ...] = ()
    max_chars: int | None = None


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    expect: Expect
    lang: str = "ja"
    history: tuple[dict, ...] = ()
    source: str = ""  # "<file>:<line>"
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def _str_list(value, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"expect.{name} must be a list of non-empty strings")
    return tuple(value)


def parse_case(obj, source: str = "") -> Case:
    """Validate one decoded JSON line; raises ValueError with a readable message."""
    if not isinstance(obj, dict):
        raise ValueError(f"a case must be a JSON object, not {type(obj).__name__}")
    for key in ("id", "question", "expect"):
        if key not in obj:
            raise ValueError(f"missing '{key}'")
    cid, question, exp = obj["id"], obj["question"], obj["expect"]
    if not isinstance(cid, str) or not cid.strip():
        raise ValueError("'id' must be a non-empty string")
    if not isinstance(question, str):
        raise ValueError(f"'question' must be a string (case {cid!r})")
    lang = obj.get("lang")
    if lang is None:
        from bpo_assistant.text import detect_lang

        lang = detect_lang(question)
    elif not isinstance(lang, str) or not lang:
        raise ValueError(f"'lang' must be a string (case {cid!r})")
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(t, dict) and t.get("role") in ROLES and isinstance(t.get("content"), str) for t in history
    ):
        raise ValueError(f"'history' must be a list of {{role: user|assistant, content: str}} (case {cid!r})")
    if not isinstance(exp, dict):
        raise ValueError(f"'expect' must be an object (case {cid!r})")
    unknown = set(exp) - EXPECT_KEYS
    if unknown:  # a typo such as "fact" would otherwise make the case pass silently
        raise ValueError(f"unknown expect key(s) {sorted(unknown)} (case {cid!r}); allowed: {sorted(EXPECT_KEYS)}")
    if not isinstance(exp.get("refuse"), bool):
        raise ValueError(f"expect.refuse must be true or false (case {cid!r})")
    doc_ids = _str_list(exp["doc_ids"], "doc_ids") if "doc_ids" in exp else None
    if doc_ids is not None and not doc_ids:
        raise ValueError(f"expect.doc_ids must not be empty; omit it instead (case {cid!r})")
    facts_raw = exp.get("facts", [])
    if not isinstance(facts_raw, list) or not all(isinstance(g, list) and g for g in facts_raw):
        raise ValueError(f"expect.facts must be a list of non-empty lists of alternatives (case {cid!r})")
    facts = tuple(_str_list(g, "facts[]") for g in facts_raw)
    forbid = _str_list(exp.get("forbid", []), "forbid")
    max_chars = exp.get("max_chars")
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars <= 0):
        raise ValueError(f"expect.max_chars must be a positive integer (case {cid!r})")
    extra = {k: v for k, v in obj.items() if k not in {"id", "question", "lang", "history", "expect"}}
    return Case(
        id=cid, question=question, lang=lang, history=tuple(dict(t) for t in history), source=source, extra=extra,
        expect=Expect(refuse=exp["refuse"], doc_ids=doc_ids, facts=facts, forbid=forbid, max_chars=max_chars),
    )


def load_suite(path: str | Path) -> tuple[list[Case], list[str]]:
    """Cases of one file plus "<file>:<line>: <problem>" for every line that was skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SuiteError(f"suite file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"cannot read suite file {path}: {exc}") from None
    cases: list[Case] = []
    problems: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); line skipped")
            continue
        try:
            cases.append(parse_case(obj, where))
        except ValueError as exc:
            problems.append(f"{where}: {exc}; line skipped")
    return cases, problems


def load_suites(paths) -> tuple[list[Case], list[str]]:
    """All cases of all files in order; duplicate ids (within or across files) keep the first occurrence."""
    cases: list[Case] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        file_cases, file_problems = load_suite(path)
        problems.extend(file_problems)
        for case in file_cases:
            if case.id in seen:
                problems.append(f"{case.source}: duplicate id {case.id!r} (first at {seen[case.id]}); line skipped")
                continue
            seen[case.id] = case.source
            cases.append(case)
    return cases, problems
