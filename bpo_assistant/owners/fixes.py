"""One-click fixes for a triaged question: an expected question in the bank, a suite case; and the guarded write
every kb fix goes through (the glossary alias is in alias.py, the curated draft in drafts.py).

Each fix writes one file a reviewer reads in git: the bank gains exactly one line (inserted as text after the
section's last question, so comments and the file's own layout stay; bank.dump only writes files or sections
that do not exist yet), a suite gains exactly one JSONL line. Writes are atomic (bpo_assistant.atomic). A bank
fix is checked with `kb check` on the result: if the check finds a problem it did not find before, the old
file is put back and the fix is refused with the check's message.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import atomic
from ..bank import _GROUP, BankError, dump, load_bank, parse
from ..kbcheck import check_kb
from ..kbfiles import load_kb_docs
from ..settings import Settings


class FixError(ValueError):
    """A fix that was not applied; the files are as they were."""


@dataclass(frozen=True)
class Fix:
    path: str
    diff: str  # unified diff of the file, for the owner to see what changed


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def _item_line(question: str, indent: str) -> str:
    # As YAML writes it (quoted only when the text needs it), so the file reads back to the same string.
    return indent + yaml.safe_dump([question], allow_unicode=True, width=10**6).strip() + "\n"


def _insert(text: str, section_id: str, question: str) -> str:
    """`text` with `question` appended to `section_id`'s list; a new section key at the end when absent."""
    lines = text.splitlines(keepends=True)
    key = re.compile(rf"^(\s+)['\"]?{re.escape(section_id)}['\"]?\s*:\s*(#.*)?$")
    for no, line in enumerate(lines):
        m = key.match(line.rstrip("\n"))
        if not m:
            continue
        width, last, indent = len(m.group(1)), no, m.group(1) + "  "
        for j in range(no + 1, len(lines)):
            body = lines[j].strip()
            if not body or body.startswith("#"):
                continue
            if len(lines[j]) - len(lines[j].lstrip()) <= width and not body.startswith("- "):
                break
            if body.startswith("- "):
                last, indent = j, lines[j][: len(lines[j]) - len(lines[j].lstrip())]
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, _item_line(question, indent))
        return "".join(lines)
    tail = "" if text.endswith("\n") else "\n"
    return text + tail + f"  {section_id}:\n" + _item_line(question, "    ")


def add_expected_question(settings: Settings, lang: str, label: str, question: str) -> Fix:
    """Add `question` to the bank of section `label` ("doc#section") in `lang`; FixError when it cannot be."""
    question = re.sub(r"\s+", " ", question or "").strip()
    if not question:
        raise FixError("the question is empty")
    if _GROUP.search(question):
        raise FixError(f"{question!r} holds an alternation group (…|…); add it by hand in the bank file")
    doc_id, _, section_id = label.partition("#")
    kb_dir = Path(settings.kb_dir)
    docs, _ = load_kb_docs(kb_dir)
    doc = docs.get((lang, doc_id))
    if doc is None or section_id not in {s.id for s in doc.sections}:
        raise FixError(f"unknown section {label} ({lang}): no such section in kb/{lang}/{doc_id}.md")
    existing, _ = load_bank(kb_dir)
    for q in existing:
        if q.lang == lang and _key(q.text) == _key(question):
            where = "already an expected question of" if q.label == label else "already listed under"
            written = "" if q.text == question else f" as {q.text!r}"
            raise FixError(f"{q.path}:{q.line}: {question!r} is {where} {q.label}{written}")
    path = kb_dir / "questions" / lang / f"{doc_id}.yaml"
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old is None:
        new = dump(doc_id, lang, {section_id: [question]},
                   f"# Expected questions for kb/{lang}/{doc_id}.md (docs/kb-format.md \"Question bank\").")
    else:
        new = _insert(old, section_id, question)
    try:  # the new text must read back as the old bank plus exactly this question
        before = [] if old is None else [(q.section_id, q.text) for q in parse(old, str(path))]
        after = [(q.section_id, q.text) for q in parse(new, str(path))]
    except BankError as exc:
        raise FixError(f"the bank file cannot be edited safely: {exc}") from None
    if sorted(after) != sorted(before + [(section_id, question)]):
        raise FixError(f"{path}: the edit would not read back as one added question; add it by hand")
    checked_write(kb_dir, path, old, new)
    return Fix(str(path), unified_diff(path, old or "", new))


def _problem_kind(message: str) -> str:
    # Without numbers: an inserted line shifts the line of a later problem, and a section below the bank minimum
    # stays one (with a count one higher); neither is a problem the fix made.
    return re.sub(r"\d+", "#", message)


def checked_write(kb_dir: Path, path: Path, old: str | None, new: str) -> None:
    before = {_problem_kind(p) for p in check_kb(kb_dir)}
    atomic.write_text(path, new)
    introduced = [p for p in check_kb(kb_dir) if _problem_kind(p) not in before]
    if introduced:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            atomic.write_text(path, old)
        raise FixError("kb check: " + "; ".join(introduced))


def unified_diff(path: Path, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path.name}",
                                        f"b/{path.name}"))


def suite_case(question: str, lang: str, case_id: str, refuse: bool, doc_ids=(), note: dict | None = None) -> dict:
    """A regression case for evals/suite.py; facts are left for the reviewer (what counts as the fact is theirs)."""
    expect: dict = {"refuse": bool(refuse)}
    if not refuse:
        if not doc_ids:
            raise FixError("an answerable case needs the document it should cite")
        expect["doc_ids"] = list(dict.fromkeys(doc_ids))
        expect["facts"] = []
    case = {"id": case_id, "question": question, "lang": lang, "expect": expect}
    if note:
        case["triage"] = note
    return case


def add_case(suite: Path | str, case: dict) -> Fix:
    """Append `case` to the JSONL suite `suite` (created when absent); FixError on a taken id or a bad case."""
    from bpo_assistant.evals.suite import parse_case

    suite = Path(suite)
    try:
        parse_case(case)
    except ValueError as exc:
        raise FixError(f"not a valid suite case: {exc}") from None
    old = suite.read_text(encoding="utf-8") if suite.exists() else ""
    for no, line in enumerate(old.splitlines(), 1):
        try:
            taken = json.loads(line).get("id") if line.strip() else None
        except (json.JSONDecodeError, AttributeError):
            continue
        if taken == case["id"]:
            raise FixError(f"{suite}:{no}: case id {case['id']!r} is taken")
    new = old + ("" if not old or old.endswith("\n") else "\n") + json.dumps(case, ensure_ascii=False) + "\n"
    atomic.write_text(suite, new)
    return Fix(str(suite), unified_diff(suite, old, new))


def reingest(settings: Settings):
    """The incremental ingest after a fix (only the router is retrained when only the bank changed)."""
    from bpo_assistant.ingest.pipeline import run_ingest

    return run_ingest(settings, progress=False)


def cli_add_question(settings: Settings, label: str, question: str, lang: str | None = None) -> int:
    """`bpo-assistant kb add-question DOC#SECTION "…" [--lang ja]`: the diff on stdout; exit 1 with the reason when
    refused (files untouched). The next `ask`/`chat`/`ingest` re-trains the router."""
    import sys

    from ..text import detect_lang

    if "#" not in label:
        print(f"error: {label!r} is not DOC#SECTION (e.g. bpo-overview#definition)", file=sys.stderr)
        return 2
    try:
        fix = add_expected_question(settings, lang or detect_lang(question), label, question)
    except FixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(fix.diff)
    return 0
