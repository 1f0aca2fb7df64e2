"""Which files an ingest run reads, and the keys the manifest knows them by."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bpo_assistant.limits import symlink_problem
from bpo_assistant.settings import Settings

from .loaders import KB_LANGS, SUPPORTED


def doc_key(path: Path, settings: Settings) -> str:
    """kb files by their path inside kb/ (stable when the checkout moves); anything else by absolute path."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path(settings.kb_dir).resolve()).as_posix()
    except ValueError:
        return str(p)


# kb/ also holds data that is not documents, each read by its own loader (glossary, comparisons, phrasings,
# curated answers, the question bank); everything else under kb/ is a document or is named as unsupported.
KB_DATA_DIRS = ("curated", "questions")
KB_DATA_SUFFIXES = (".yaml", ".yml")


def discover(settings: Settings, paths, old_docs: dict) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """Default run: every file under kb/ but its YAML data, plus external sources already indexed whose files
    still exist (kb/ is the truth: what is gone from disk leaves the index). Explicit paths: exactly those
    files, and the supported files of those folders. A path that cannot be walked is named and skipped."""
    kb = Path(settings.kb_dir)
    found: list[Path] = []
    failed: list[tuple[str, str]] = []
    if paths is None:
        found += [f for f in walk(kb, failed, skip_dirs=KB_DATA_DIRS)
                  if not (f.parent == kb and f.suffix.lower() in KB_DATA_SUFFIXES)]
        found += [Path(e["path"]) for k, e in old_docs.items() if Path(k).is_absolute() and Path(e["path"]).is_file()]
    else:
        for p in map(Path, paths):
            if p.is_dir():
                found += [f for f in walk(p, failed) if f.suffix.lower() in SUPPORTED]
            elif p.is_file():
                found.append(p)
            else:
                failed.append((str(p), "no such file or folder"))
    sources = {doc_key(f, settings): f for f in found}
    return sorted(sources.items()), failed


def walk(root: Path, failed: list[tuple[str, str]], skip_dirs: tuple[str, ...] = ()) -> list[Path]:
    """Files under root in sorted order. Hidden names are skipped (editor and temp files); symlinked folders
    are never followed (a loop, or a second copy of the kb); a symlinked file is read only when it resolves
    inside root. Whatever cannot be read or followed goes to `failed` with its reason."""
    root_real = root.resolve()
    out: list[Path] = []

    def unreadable(exc: OSError) -> None:
        failed.append((str(exc.filename), f"cannot read folder: {exc.strerror or exc}; skipped"))

    for top, dirs, files in os.walk(root, onerror=unreadable):
        here = Path(top)
        for d in sorted(dirs):
            if d.startswith(".") or (here == root and d in skip_dirs):
                dirs.remove(d)
            elif (here / d).is_symlink():
                dirs.remove(d)
                failed.append((str(here / d), symlink_problem(here / d, root_real, "folder")))
        dirs.sort()
        for name in sorted(files):
            path = here / name
            if name.startswith("."):
                continue
            if path.is_symlink():
                reason = symlink_problem(path, root_real, "file")
                if reason:
                    failed.append((str(path), reason))
                    continue
            if not path.is_file():  # reading a FIFO would block the ingest (and the ingest lock) forever
                failed.append((str(path), "not a regular file (a pipe, socket or device); skipped"))
                continue
            out.append(path)
    return out


def file_hash(path: Path, settings: Settings) -> str | None:
    try:
        if path.stat().st_size > settings.max_file_bytes:
            return None  # the loader reports the size; never read a huge file just to hash it
        return hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    except OSError:
        return None
