"""What one source file may cost, and reading it safely within that: shared by ingest and `kb check`, so the
two never disagree about a file (a NUL byte, a 30 MB file, a 10,000-heading document, a symlink out of kb/).

Each limit bounds memory or time per file and has a BPO_* setting; a rejection names the limit it hit and
that setting, so the owner knows whether to split the file or raise the limit.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    file_bytes: int = 5_000_000  # on disk, checked before reading
    unzipped_bytes: int = 20_000_000  # a DOCX (zip) decompressed, checked before unpacking
    pdf_pages: int = 500
    sections: int = 300  # headings per document: each section is chunked, embedded and routed
    doc_chars: int = 300_000  # text per document after extraction

    @classmethod
    def of(cls, settings) -> "Limits":
        return cls(settings.max_file_bytes, settings.max_unzipped_bytes, settings.max_pdf_pages,
                   settings.max_sections, settings.max_doc_chars)


class FileProblem(ValueError):
    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def over(value: int, what: str, limit: int, setting: str) -> str:
    return f"{value:,} {what}, over the limit of {limit:,} ({setting})"


def read_bytes(path: Path, limits: Limits) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # reading a FIFO would block forever
            raise FileProblem(path, "not a regular file (a pipe, socket or device)")
        size = st.st_size
        # Checked before reading so a stray multi-gigabyte file never lands in memory.
        if size > limits.file_bytes:
            raise FileProblem(path, "file is " + over(size, "bytes", limits.file_bytes, "BPO_MAX_FILE_BYTES"))
        data = path.read_bytes()
    except OSError as exc:
        raise FileProblem(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not data:
        raise FileProblem(path, "no text: the file is empty")
    return data


def decode_text(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise FileProblem(path, "binary content (NUL bytes): not a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileProblem(path, f"invalid UTF-8 at byte {exc.start} (line {line}); save the file as UTF-8") from None
    if not text.strip():
        raise FileProblem(path, "no text: the file holds only whitespace")
    return text


def read_text(path: Path, limits: Limits) -> str:
    return decode_text(path, read_bytes(path, limits))


def doc_problem(sections, limits: Limits) -> str | None:
    """Why a parsed document (its sections) is too big to index, or None."""
    if len(sections) > limits.sections:
        return over(len(sections), "headings (sections)", limits.sections, "BPO_MAX_SECTIONS") + "; split the document"
    chars = sum(len(s.title) + len(s.text) for s in sections)
    if chars > limits.doc_chars:
        return over(chars, "characters of text", limits.doc_chars, "BPO_MAX_DOC_CHARS") + "; split the document"
    return None


def symlink_problem(path: Path, root_real: Path, kind: str = "file") -> str | None:
    """Why a symlink under root is not read, or None for a file link that stays inside root. Folder links are
    never followed (a loop, or a second copy of the kb)."""
    try:
        target = path.resolve(strict=True)
    except RuntimeError:
        return "symlink loop; skipped"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop; skipped"
        return f"broken symlink (target {os.readlink(path)!r} does not exist); skipped"
    if not target.is_relative_to(root_real):
        return f"symlink to {target}, outside {root_real.name}/: not followed"
    if kind == "folder":
        return f"symlinked folder (to {target}): not followed; its files are read where they are"
    return None
