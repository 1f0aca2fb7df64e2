"""Which files an ingest run reads, and the keys the manifest knows them by."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bpo_assistant.settings import Settings

from .loaders import KB_LANGS, SUPPORTED


def doc_key(path: Path, settings: Settings) -> str:
    """kb files by their path inside kb/ (stable when the checkout moves); anything else by absolute path."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path(settings.kb_dir).resolve()).as_posix()
    except ValueError:
        return str(p)


def discover(settings: Settings, paths, old_docs: dict) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """Default run: kb/ja and kb/en plus external sources already indexed whose files still exist (kb/ is
    the truth: what is gone from disk leaves the index). Explicit paths: exactly those files/folders."""
    kb = Path(settings.kb_dir)
    found: list[Path] = []
    failed: list[tuple[str, str]] = []
    if paths is None:
        for lang in KB_LANGS:
            found += sorted((kb / lang).glob("*.md"))
        found += [Path(e["path"]) for k, e in old_docs.items() if Path(k).is_absolute() and Path(e["path"]).is_file()]
    else:
        for p in map(Path, paths):
            if p.is_dir():
                found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED
                                and not any(part.startswith(".") for part in f.relative_to(p).parts))
            elif p.is_file():
                found.append(p)
            else:
                failed.append((str(p), "no such file or folder"))
    sources = {doc_key(f, settings): f for f in found}
    return sorted(sources.items()), failed


def file_hash(path: Path, settings: Settings) -> str | None:
    try:
        if path.stat().st_size > settings.max_file_bytes:
            return None  # the loader reports the size; never read a huge file just to hash it
        return hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    except OSError:
        return None
