"""One-click fix: a glossary alias (PC for パソコン), so questions that use the word find the term's documents.

The edit is one line of kb/glossary.yaml: the alias goes at the end of the entry's `variants`, inserted as text
at the positions the YAML parser reports, so comments, order and every other entry stay byte for byte and the
reviewer's git diff is that one line. The result must read back as the old glossary plus exactly this alias;
then the write is the guarded one of every kb fix (fixes.checked_write: atomic, kb check, refused and put back
when the check finds a new problem).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..settings import Settings
from .fixes import Fix, FixError, checked_write, unified_diff


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
    checked_write(Path(settings.kb_dir), path, old, new)
    return Fix(str(path), unified_diff(path, old, new))


def _line_of(text: str, needle: str) -> int:
    return next((i for i, line in enumerate(text.splitlines(), 1) if needle in line), 1)
