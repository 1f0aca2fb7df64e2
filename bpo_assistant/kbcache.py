"""What each kb file parsed to, kept in the data dir so a start re-parses only the files that changed.

Re-parsing every kb file's YAML front matter was most of a query process's start at 100k chunks (21 of 27 s for
10,010 files); stat-ing them takes milliseconds. One file, `data_dir/kb-docs.cache`:

    line 1   a JSON header: VERSION, the fingerprint of the parser (its source, PyYAML's version, the limits and
             the kb folder), the body's length and CRC-32
    line 2   a JSON body: per file (`ja/x.md`) its stat key and what it parsed to, a document or (line, message)

Keyed by stat, not by content hash: hashing means reading every file, and the point is not to. The stat key is
(size, mtime_ns, ctime_ns, inode, device): an editor's save, a `git checkout`, a `cp` or a `touch -d` into the past
each change one of them (ctime cannot be set back). A file changed within RACY_NS of the scan is not kept, since a
second edit in the same timestamp tick could leave its stat as it was (git's "racily clean" problem).

Only the per-file parse is cached. Duplicate ids, symlink checks and the paths in documents and errors are
computed on every load from the current listing, so a cached load returns what an uncached one would. A cache of
another VERSION or parser, a truncated or corrupt file, or one whose entries do not decode is ignored with its
reason and rewritten; it is never partly trusted. Written through atomic.py: a killed start leaves the old cache
or the new one, and two processes writing at once leave one of them whole.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import zlib
from dataclasses import astuple, dataclass
from pathlib import Path

from . import atomic
from .limits import Limits
from .types import Section, SourceDoc

FILE = "kb-docs.cache"
VERSION = 1
RACY_NS = 2_000_000_000  # above the coarsest timestamp granularity of a filesystem we expect (FAT: 2 s)
# The parse depends on these modules' code: a changed one (an upgrade, an edited check) discards the cache.
_PARSER_MODULES = ("kbfiles.py", "limits.py", "text.py", "types.py", "kbcache.py")

StatKey = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Entry:
    """One file's stat key and its parse: a document, or the line and message of why it is unusable."""

    stat: StatKey
    doc: SourceDoc | None
    line: int = 0
    message: str = ""


def stat_key(st: os.stat_result) -> StatKey:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def fingerprint(kb_root: Path, limits: Limits) -> str:
    here = Path(__file__).parent
    import yaml

    h = hashlib.sha256(f"{VERSION}|{kb_root}|{astuple(limits)}|{yaml.__version__}".encode())
    for name in _PARSER_MODULES:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:32]


def read(path: Path, fp: str, kb_prefix: str) -> tuple[dict[str, Entry], str]:
    """rel path → entry (documents' paths spelled `kb_prefix/rel`), and why it is empty when it is."""
    try:
        with open(path, "rb") as fh:
            head, body = fh.readline(), fh.read()  # not one read and a split: that copies 50 MB at 100k chunks
    except FileNotFoundError:
        return {}, f"no {path.name} yet"
    except OSError as exc:
        return {}, f"{path} is unreadable ({exc.strerror or exc})"
    try:
        header = json.loads(head)
        if header.get("version") != VERSION:
            return {}, f"{path.name} is version {header.get('version')!r}, not {VERSION}"
        if header.get("fingerprint") != fp:
            return {}, f"{path.name} was written by another parser, limits or kb folder"
        if header.get("length") != len(body) or header.get("crc32") != zlib.crc32(body):
            return {}, f"{path.name} is truncated or corrupt (length or CRC-32 differs from its header)"
        # Half a million objects at 100k chunks, none of them garbage: the collector's passes over them were half
        # of the decode time. Paused for the decode only (process-wide, so kept short).
        paused = gc.isenabled()
        gc.disable()
        try:
            return {rel: _entry(row, f"{kb_prefix}/{rel}") for rel, row in json.loads(body).items()}, ""
        finally:
            if paused:
                gc.enable()
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return {}, f"{path.name} does not decode ({type(exc).__name__}: {exc})"


def write(path: Path, fp: str, entries: dict[str, Entry], scan_started_ns: int) -> str:
    """Write the entries whose files were last changed before RACY_NS ahead of the scan; why not, when it fails
    (a read-only data dir only costs the next start its parse)."""
    settled = scan_started_ns - RACY_NS
    body = json.dumps({rel: _row(e) for rel, e in entries.items() if max(e.stat[1], e.stat[2]) < settled},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header = json.dumps({"version": VERSION, "fingerprint": fp, "length": len(body), "crc32": zlib.crc32(body)})
    try:
        atomic.write_bytes(path, header.encode("ascii") + b"\n" + body)
    except OSError as exc:
        return f"{path} not written ({exc.strerror or exc})"
    return ""


def _row(e: Entry) -> list:
    d = e.doc
    if d is None:
        return [list(e.stat), None, e.line, e.message]
    sections = [[s.id, s.title, s.text, s.line] for s in d.sections]
    return [list(e.stat), [d.id, d.title, d.lang, d.topic, sections, list(d.aliases), list(d.tags)]]


def _entry(row: list, path: str) -> Entry:
    stat = tuple(int(v) for v in row[0])
    if len(stat) != 5:
        raise ValueError(f"stat key of {len(stat)} fields, not 5")
    if row[1] is None:
        return Entry(stat, None, int(row[2]), str(row[3]))
    doc_id, title, lang, topic, sections, aliases, tags = row[1]
    return Entry(stat, SourceDoc(id=doc_id, title=title, lang=lang, topic=topic, path=path,
                                 sections=tuple([Section(*s) for s in sections]), aliases=tuple(aliases),
                                 tags=tuple(tags)))
