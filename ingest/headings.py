"""Sections for text without markup (plain text, PDF pages): which lines are headings.

A line is taken as a heading when it
  * is short (at most MAX_HEADING_CHARS characters),
  * does not end like a sentence or a clause (。 . ! 、 , : ; …),
  * is not a bullet, a URL, or letter-less (page numbers, rules such as '-----'),
  * and the next non-blank line is body text (a line that is not itself heading-like).
The last rule keeps stray short lines (link captions, "お問い合わせ" buttons copied from a web page, a
list of short items) in the body instead of opening empty sections. Question marks are allowed: Japanese
web articles title their sections with questions ("BPOとは?", "…の違いとは?").

Text is NFKC-normalised before it gets here, so full-width punctuation (。 stays, ！→!, ？→?, ：→:) is folded.
"""

from __future__ import annotations

import re

from bpo_assistant.types import Section

Block = tuple[str | None, list[str]]  # (heading or None for text before the first heading, body lines)

MAX_HEADING_CHARS = 40
_CLAUSE_END = ("。", ".", "!", "、", ",", ":", ";", "…", "」")
_BULLET = re.compile(r"^(?:[-*+・•●■◆▪]\s*|\d{1,2}[)]\s*)")
_URL = re.compile(r"^(?:https?://|www\.)", re.I)
_SENTENCE_END = ("。", ".", "!", "?", "」", ")")


def is_heading_like(line: str) -> bool:
    s = line.strip()
    if not s or len(s) > MAX_HEADING_CHARS or s.endswith(_CLAUSE_END):
        return False
    if _BULLET.match(s) or _URL.match(s):
        return False
    return any(ch.isalpha() for ch in s)


def unwrap(lines: list[str]) -> list[str]:
    """Re-join hard-wrapped paragraphs (PDF text, e-mails wrapped at 72 columns).

    Only when the text looks wrapped: many lines sit near one common width. A line that reaches that
    width without ending a sentence continues on the next line. Text made of one paragraph per line (the
    usual web copy) has no such common width and is left alone.
    """
    lengths = [len(s) for s in (line.strip() for line in lines) if s]
    if len(lengths) < 4:
        return lines
    width = sorted(lengths)[int(len(lengths) * 0.9) - 1]
    near = sum(1 for n in lengths if n >= 0.85 * width)
    if width < 20 or near < 0.4 * len(lengths):
        return lines
    out: list[str] = []
    joining = False
    for line in lines:
        s = line.strip()
        if joining and s and not _BULLET.match(s):
            sep = "" if not (out[-1][-1].isascii() or s[0].isascii()) else " "
            out[-1] = out[-1] + sep + s
        else:
            out.append(s)
        last = out[-1]
        joining = bool(last) and len(s) >= 0.85 * width and not last.endswith(_SENTENCE_END)
    return out


def plain_text_blocks(text: str) -> list[Block]:
    lines = [line.strip() for line in unwrap(text.splitlines())]
    # next_body[i]: is the next non-blank line after i body text?
    next_body = [False] * len(lines)
    following: bool = False
    for i in range(len(lines) - 1, -1, -1):
        next_body[i] = following
        if lines[i]:
            following = not is_heading_like(lines[i])
    blocks: list[Block] = [(None, [])]
    for i, line in enumerate(lines):
        if not line:
            continue
        if is_heading_like(line) and next_body[i]:
            blocks.append((line, []))
        else:
            blocks[-1][1].append(line)
    return blocks


def to_sections(blocks: list[Block], lang: str) -> list[Section]:
    """Sections with unique ASCII ids; sections without body text are dropped (nothing to index)."""
    sections: list[Section] = []
    used: set[str] = set()
    headed = any(h for h, _ in blocks)
    for n, (heading, lines) in enumerate(blocks):
        text = "\n".join(lines).strip()
        if not text:
            continue
        if heading is None:
            sid, title = ("intro", "はじめに" if lang == "ja" else "Introduction") if headed else (
                "body", "本文" if lang == "ja" else "Text")
        else:
            slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") if heading.isascii() else ""
            # Non-ASCII titles get positional ids: a partial ASCII slug ("bpo" for "BPOとは?") would mislead.
            sid, title = slug or f"section-{n}", heading
        base, k = sid, 2
        while sid in used:
            sid, k = f"{base}-{k}", k + 1
        used.add(sid)
        sections.append(Section(id=sid, title=title, text=text))
    return sections
