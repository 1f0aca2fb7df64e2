"""The question bank: expected questions per kb section (kb/questions/<lang>/<doc-id>.yaml). Format and parser.

    # Expected questions for kb/ja/bpo-overview.md …
    doc: bpo-overview
    lang: ja
    sections:
      definition:
        - BPOとは何ですか？
        - BPOの意味を(教えて|知りたい)      # alternation: one question per alternative

Why a bank: e5-small squeezes any two BPO questions into cosine 0.93–0.97, so matching a question against the
answer text lets surface words win. The Japanese FAQ products (Helpfeel, PKSHA FAQ) get their recall from
questions written per answer; the router (bpo_assistant/router.py) is trained on these.

A parenthesised group that contains `|` is an alternation; any other parentheses are literal text (kb wording
such as 「BPO(ビジネス・プロセス・アウトソーシング)」 must survive). Groups may repeat; nesting is not supported
and is reported.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

_GROUP = re.compile(r"[(（]([^()（）]*[|｜][^()（）]*)[)）]")
MAX_EXPANSIONS = 32  # a typo like (a|b|c)(d|e|f)(g|h|i)(j|k) would otherwise flood the bank


class BankError(ValueError):
    """A bank file that cannot be used; the message starts with `path:line:`."""


@dataclass(frozen=True)
class BankQuestion:
    lang: str
    doc_id: str
    section_id: str
    text: str  # one expanded question
    written: str  # the line as written (with alternation), for messages
    path: str
    line: int

    @property
    def label(self) -> str:
        return f"{self.doc_id}#{self.section_id}"


def expand(pattern: str) -> list[str]:
    """「順番を(移動|変更)したい」 → [「順番を移動したい」, 「順番を変更したい」]; text without a group is itself."""
    parts = _GROUP.split(pattern)
    literals, groups = parts[0::2], [[a.strip() for a in re.split(r"[|｜]", g)] for g in parts[1::2]]
    if not groups:
        return [pattern.strip()]
    out = []
    for combo in itertools.islice(itertools.product(*groups), MAX_EXPANSIONS):
        text = literals[0] + "".join(alt + lit for alt, lit in zip(combo, literals[1:]))
        out.append(re.sub(r"\s+", " ", text).strip())
    return list(dict.fromkeys(q for q in out if q))


def _line_numbers(text: str) -> dict[str, list[int]]:
    """Lines of each list item's text, in file order (a repeated question keeps each of its lines), so messages
    point at the line a knowledge owner edits."""
    lines: dict[str, list[int]] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        item = raw.strip()
        if item.startswith("- "):
            value = item[2:].strip()
            try:  # the text as YAML reads it: quotes and escapes resolved
                value = str(yaml.safe_load(value))
            except yaml.YAMLError:
                pass
            lines.setdefault(value.strip(), []).append(no)
    return lines


def parse(text: str, path: str = "<bank>") -> list[BankQuestion]:
    """All expanded questions of one bank file; BankError on anything malformed."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BankError(f"{path}:{(mark.line + 1) if mark else 1}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise BankError(f"{path}:1: a bank file is a mapping with doc, lang and sections")
    doc, lang, sections = data.get("doc"), data.get("lang"), data.get("sections")
    if not isinstance(doc, str) or not doc or not isinstance(lang, str) or not lang:
        raise BankError(f"{path}:1: 'doc' and 'lang' must be non-empty strings")
    if not isinstance(sections, dict) or not sections:
        raise BankError(f"{path}:1: 'sections' must map section ids to lists of questions")
    lines = _line_numbers(text)
    out: list[BankQuestion] = []
    for section_id, questions in sections.items():
        if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
            raise BankError(f"{path}:{_line_of(text, section_id)}: section {section_id!r} needs a list of "
                            "non-empty question strings")
        for q in questions:
            seen = lines.get(q.strip(), [])
            line = seen.pop(0) if len(seen) > 1 else (seen[0] if seen else 1)
            if re.search(r"[(（][^)）]*[(（]", q) and re.search(r"[|｜]", q):
                raise BankError(f"{path}:{line}: nested alternation in {q!r} is not supported")
            out += [BankQuestion(lang, doc, str(section_id), e, q.strip(), path, line) for e in expand(q)]
    return out


def dump(doc_id: str, lang: str, sections: dict[str, list[str]], header: str = "") -> str:
    """The file text for a bank (the inverse of parse for unexpanded questions); used by tools that add questions."""
    body = yaml.safe_dump({"doc": doc_id, "lang": lang, "sections": sections}, allow_unicode=True,
                          sort_keys=False, width=1000)
    return (header.rstrip() + "\n" if header else "") + body


def load_bank(kb_dir: Path) -> tuple[list[BankQuestion], list[str]]:
    """Every bank file under kb/questions/*/; a broken file is named in the errors and skipped."""
    questions: list[BankQuestion] = []
    errors: list[str] = []
    for path in sorted(Path(kb_dir, "questions").glob("*/*.yaml")):
        try:
            found = parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{path}:1: cannot read ({exc})")
            continue
        except BankError as exc:
            errors.append(str(exc))
            continue
        if found and found[0].lang != path.parent.name:
            errors.append(f"{path}:1: lang {found[0].lang!r} but the file is under questions/{path.parent.name}/")
            continue
        questions += found
    return questions, errors


def _line_of(text: str, section_id: str) -> int:
    """The line of the `section_id:` key itself (not of `cost-section_id:`)."""
    key = re.compile(rf"^\s*['\"]?{re.escape(str(section_id))}['\"]?\s*:")
    for no, line in enumerate(text.splitlines(), 1):
        if key.match(line):
            return no
    return 1
