"""Our knowledge-base Markdown format (docs/kb-format.md): YAML front matter + `## Heading {#id}` sections.

Lives in the core because both ingest (to index) and the answer side (curated staleness, kb check) read it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from . import kbcache
from .limits import FileProblem, Limits, doc_problem, read_text, symlink_problem
from .text import normalize, split_sentences
from .types import Section, SourceDoc

KB_LANGS = ("ja", "en")  # kb/<lang>/ folders
REQUIRED_FIELDS = ("id", "title", "lang", "topic", "tags", "aliases", "source", "reviewed", "owner")
TOPICS = ("overview", "comparison", "operations", "benefits", "precautions", "vendor-selection", "contracts", "dx",
          "checklist")
_HEADING = re.compile(r"^##\s+(?P<title>.+?)\s*(?:\{#(?P<id>[A-Za-z0-9_-]+)\})?\s*$")


class KbFormatError(ValueError):
    """A kb file that cannot be used; carries the path and line for `kb check` and ingest reports."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = str(path), line, message


def split_front_matter(text: str, path: str | Path = "<text>") -> tuple[dict, str, int]:
    """Return (front matter, body, line number where the body starts)."""
    if not text.startswith("---"):
        raise KbFormatError(path, 1, "missing YAML front matter (the file must start with '---')")
    lines = text.splitlines()
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise KbFormatError(path, 1, "front matter is not closed by a '---' line") from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark else 1
        raise KbFormatError(path, line, f"front matter is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(meta, dict):
        raise KbFormatError(path, 2, "front matter must be a YAML mapping")
    return meta, "\n".join(lines[end + 1 :]), end + 2


def parse_sections(body: str, first_line: int = 1) -> list[Section]:
    sections: list[Section] = []
    title, sid, start, buf = None, None, 0, []
    for offset, line in enumerate(body.splitlines()):
        m = _HEADING.match(line)
        if m:
            if title is not None:
                sections.append(Section(sid or _slug(title, len(sections)), title, "\n".join(buf).strip(), start))
            title, sid, start, buf = m["title"], m["id"], first_line + offset, []
        elif line.startswith("# ") and title is None:
            continue  # tolerated H1 title line before the first section
        else:
            buf.append(line)
    if title is not None:
        sections.append(Section(sid or _slug(title, len(sections)), title, "\n".join(buf).strip(), start))
    elif "\n".join(buf).strip():
        sections.append(Section("body", "本文", "\n".join(buf).strip(), first_line))
    return sections


def _slug(title: str, index: int) -> str:
    ascii_part = re.sub(r"[^a-z0-9]+", "-", normalize(title).lower()).strip("-")
    return ascii_part or f"section-{index + 1}"


def load_markdown(path: Path, require_all_fields: bool = True, limits: Limits | None = None,
                  text: str | None = None) -> SourceDoc:
    """A document in our format. `require_all_fields` holds it to the kb/<lang>/ contract (docs/kb-format.md);
    `text` is the file's text when the caller has read it already (ingest reads each file once)."""
    path, limits = Path(path), limits or Limits()
    if text is None:
        try:
            text = read_text(path, limits)
        except FileProblem as exc:
            raise KbFormatError(path, 1, exc.reason) from None
    meta, body, body_line = split_front_matter(text, path)
    fields = REQUIRED_FIELDS if require_all_fields else ("id", "title", "lang")
    for name in fields:
        if meta.get(name) in (None, "", []):
            raise KbFormatError(path, 1, f"front matter field '{name}' is missing or empty")
    lang = str(meta.get("lang"))
    if lang not in ("ja", "en"):
        raise KbFormatError(path, 1, f"front matter field 'lang' must be 'ja' or 'en', not {lang!r}")
    folder = path.parent.name
    if require_all_fields and folder in KB_LANGS and lang != folder:
        # Otherwise a kb/en file saying `lang: ja` sorts before, and displaces, the Japanese document with its id.
        raise KbFormatError(path, _line_of(text, "lang:"), f"front matter says lang: {lang}, but the file is in "
                                                           f"kb/{folder}/; fix `lang` or move the file")
    topic = str(meta.get("topic") or "general")
    if require_all_fields and topic not in TOPICS:
        raise KbFormatError(path, 1, f"front matter field 'topic' {topic!r} is not one of {', '.join(TOPICS)}")
    sections = parse_sections(body, body_line)
    if not any(s.text for s in sections):
        raise KbFormatError(path, body_line, "document has no text")
    problem = doc_problem(sections, limits)
    if problem:
        raise KbFormatError(path, body_line, problem)
    return SourceDoc(
        id=str(meta["id"]), title=str(meta["title"]), lang=lang, topic=topic, path=str(path),
        sections=tuple(sections), aliases=tuple(str(a) for a in meta.get("aliases") or ()),
        tags=tuple(str(t) for t in meta.get("tags") or ()),
    )


def _line_of(text: str, prefix: str) -> int:
    return next((i for i, line in enumerate(text.splitlines(), start=1) if line.startswith(prefix)), 1)


def section_sentences(section: Section) -> list[str]:
    return [normalize(s) for s in split_sentences(section.text)]


def section_hash(sentences: list[str]) -> str:
    """Hash of a section's sentences as indexed; curated answers store it to detect edited sources."""
    return hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest()[:16]


def load_kb_docs(kb_dir: Path, limits: Limits | None = None, cache_dir: Path | None = None
                 ) -> tuple[dict[tuple[str, str], SourceDoc], list[KbFormatError]]:
    """All kb/ja and kb/en documents keyed by (lang, id), plus the files that failed to parse. Same reader and
    limits as ingest; of two files with one id, the first by sorted path wins, as in ingest. With `cache_dir` (the
    data dir), only files changed since its kbcache.FILE was written are parsed; the result is the same."""
    scan = scan_kb(kb_dir, limits, cache_dir)
    return scan.docs, scan.errors


@dataclass(frozen=True)
class KbScan:
    docs: dict[tuple[str, str], SourceDoc]
    errors: list[KbFormatError]
    parsed: int  # files parsed in this load
    reused: int  # files whose parse came from the cache
    reason: str  # why files were parsed, or why the cache was not written ("" when all came from the cache)


def scan_kb(kb_dir: Path, limits: Limits | None = None, cache_dir: Path | None = None) -> KbScan:
    limits, cache = limits or Limits(), Path(cache_dir, kbcache.FILE) if cache_dir is not None else None
    started = time.time_ns()  # before any stat: kbcache.write keeps only files settled before it
    docs: dict[tuple[str, str], SourceDoc] = {}
    errors: list[KbFormatError] = []
    root = Path(kb_dir).resolve()
    fp = kbcache.fingerprint(root, limits) if cache is not None else ""
    old, reason = kbcache.read(cache, fp, str(Path(kb_dir))) if cache is not None else ({}, "no cache")
    new: dict[str, kbcache.Entry] = {}
    parsed = reused = 0
    # Sorted by path as strings: the same order as sorting the Paths (one folder per language, "en" < "ja"), at a
    # tenth of the cost for 10,000 files.
    for spath, path in sorted((str(p), p) for lang in KB_LANGS for p in Path(kb_dir, lang).glob("*.md")):
        try:
            st = os.lstat(spath)
        except OSError:
            st = None  # vanished since the listing: load_markdown says why, and it is not kept
        if st is not None and stat.S_ISLNK(st.st_mode):
            link = symlink_problem(path, root)
            if link:  # checked on every load: a link's target can move without the link's stat changing
                errors.append(KbFormatError(path, 1, link))
                continue
            try:
                st = os.stat(spath)
            except OSError:
                st = None
        rel = f"{path.parent.name}/{path.name}"
        key = kbcache.stat_key(st) if st is not None else None
        entry = old.get(rel)
        if entry is not None and key is not None and entry.stat == key:
            reused += 1
        else:
            entry, parsed = _parse(path, limits, key), parsed + 1
        if key is not None:
            new[rel] = entry
        if entry.doc is None:
            errors.append(KbFormatError(path, entry.line, entry.message))
            continue
        doc = entry.doc if entry.doc.path == spath else replace(entry.doc, path=spath)
        first = docs.get((doc.lang, doc.id))
        if first is not None:
            errors.append(KbFormatError(path, 1, duplicate_reason(doc.id, doc.lang, first.path)))
            continue
        docs[(doc.lang, doc.id)] = doc
    if cache is not None:
        changed = bool(parsed) or old.keys() != new.keys()
        why = (reason or f"{parsed} of {parsed + reused} files changed") if changed else ""
        reason = "; ".join(r for r in (why, kbcache.write(cache, fp, new, started) if changed else "") if r)
    return KbScan(docs, errors, parsed, reused, reason)


def _parse(path: Path, limits: Limits, key) -> "kbcache.Entry":
    try:
        return kbcache.Entry(key, load_markdown(path, limits=limits))
    except KbFormatError as exc:
        return kbcache.Entry(key, None, exc.line, exc.message)


def duplicate_reason(doc_id: str, lang: str, first: str) -> str:
    return (f"duplicate id {doc_id!r} ({lang}): {first} has it too and comes first by path, so this file is "
            "skipped; give it its own id")
