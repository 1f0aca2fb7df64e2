"""One-click fixes for a triaged question: an expected question in the bank, a glossary alias, a suite case.

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
    _checked_write(kb_dir, path, old, new)
    return Fix(str(path), _diff(path, old or "", new))


def _flow_item(alias: str) -> str:
    # As YAML writes one item of a flow list (quoted only when it holds `,` `[` `:` …), so it reads back as typed.
    return yaml.safe_dump([alias], default_flow_style=True, allow_unicode=True, width=10**6).strip()[1:-1]


def _insert_alias(text: str, entry_no: int, alias: str) -> str | None:
    """`text` with `alias` appended to the variants of the entry_no-th glossary entry, edited as text at the
    positions the YAML parser reports (so comments, order and the other entries stay byte for byte); None when
    the entry's variants are neither a flow list nor a block list."""
    root = yaml.compose(text)
    entry = root.value[entry_no]
    node = next((v for k, v in entry.value if k.value == "variants"), None)
    if not isinstance(node, yaml.SequenceNode):
        return None
    if node.flow_style:  # `variants: [a, b]`: the `]` is the last character of the node
        end = node.end_mark.index - 1
        return text[:end] + (", " if node.value else "") + _flow_item(alias) + text[end:]
    if not node.value:
        return None
    last_end = node.value[-1].end_mark.index
    line_end = text.find("\n", last_end - 1)
    line_end = len(text) if line_end < 0 else line_end + 1
    item = " " * node.start_mark.column + "- " + _flow_item(alias) + "\n"
    return text[:line_end] + ("" if text[:line_end].endswith("\n") else "\n") + item + text[line_end:]


def add_alias(settings: Settings, term: str, alias: str) -> Fix:
    """Add `alias` (PC for パソコン) to the variants of glossary term `term` in kb/glossary.yaml, so questions that
    use it find the term's documents; FixError (file untouched) for an unknown term, a taken or empty alias."""
    from ..glossary import text_key

    alias = re.sub(r"\s+", " ", alias or "").strip()
    if not alias:
        raise FixError("the alias is empty")
    if len(text_key(alias)) < 2:  # Glossary ignores one-character surfaces: the alias would never match
        raise FixError(f"the alias {alias!r} is too short: the glossary matches surfaces of 2 characters or more")
    path = Path(settings.kb_dir) / "glossary.yaml"
    try:
        old = path.read_text(encoding="utf-8")
        rows = yaml.safe_load(old) or []
    except (OSError, yaml.YAMLError) as exc:
        raise FixError(f"{path}: the glossary cannot be edited safely: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise FixError(f"{path}: the glossary is not a list of entries; edit it by hand")
    names = [str(r.get("term", "")) for r in rows]
    if text_key(term) not in {text_key(n) for n in names}:
        raise FixError(f"unknown glossary term {term!r}: {path.name} has no `term: {term}`")
    no = [text_key(n) for n in names].index(text_key(term))
    for r in rows:
        surfaces = [r.get("term"), r.get("reading"), r.get("en"), *(r.get("variants") or ())]
        if any(s and text_key(str(s)) == text_key(alias) for s in surfaces):
            where = "already a name of" if r is rows[no] else "already used by another term,"
            raise FixError(f"{path.name}:{_line_of(old, 'term: ' + str(r.get('term')))}: {alias!r} is {where} "
                           f"{r.get('term')!r}")
    new = _insert_alias(old, no, alias)
    expected = [dict(r) for r in rows]
    expected[no]["variants"] = [*(rows[no].get("variants") or ()), alias]
    if new is None or yaml.safe_load(new) != expected:
        raise FixError(f"{path}: the edit would not read back as one added alias; add it by hand")
    _checked_write(Path(settings.kb_dir), path, old, new)
    return Fix(str(path), _diff(path, old, new))


def _line_of(text: str, needle: str) -> int:
    return next((i for i, line in enumerate(text.splitlines(), 1) if needle in line), 1)


def _problem_kind(message: str) -> str:
    # Without numbers: an inserted line shifts the line of a later problem, and a section below the bank minimum
    # stays one (with a count one higher); neither is a problem the fix made.
    return re.sub(r"\d+", "#", message)


def _checked_write(kb_dir: Path, path: Path, old: str | None, new: str) -> None:
    before = {_problem_kind(p) for p in check_kb(kb_dir)}
    atomic.write_text(path, new)
    introduced = [p for p in check_kb(kb_dir) if _problem_kind(p) not in before]
    if introduced:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            atomic.write_text(path, old)
        raise FixError("kb check: " + "; ".join(introduced))


def _diff(path: Path, old: str, new: str) -> str:
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
    from evals.suite import parse_case

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
    return Fix(str(suite), _diff(suite, old, new))


def reingest(settings: Settings):
    """The incremental ingest after a fix (only the router is retrained when only the bank changed)."""
    from ingest.pipeline import run_ingest

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
