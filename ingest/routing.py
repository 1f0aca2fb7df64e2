"""Ingest stage: train the section router and the curated router from the question bank, persisted in the generation.

Files written into generations/<gen>/:
    questions.jsonl        one row per training question: text, lang, section ("doc#section"), curated, kind,
                           path, line (also the source of the chat's 「もしかして」 suggestions)
    questions.npy          their e5 query vectors, in the same order (reused by text on the next ingest)
    router-sections.{npz,json}   classes "doc#section", both languages pooled
    router-curated.{npz,json}    classes = curated answer ids without the language suffix, plus "none"
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bpo_assistant.bank import expand, load_bank
from bpo_assistant.curated import curated_base
from bpo_assistant.router import DEFAULT_C, ROUTER_VERSION, train

NONE = "none"
QUESTIONS_FILE = "questions.jsonl"
VECTORS_FILE = "questions.npy"


def inputs_hash(kb_dir: Path) -> str:
    """Changes to the bank or the curated files retrain the router even when no document changed."""
    h = hashlib.sha256(f"{ROUTER_VERSION}|{DEFAULT_C}".encode())
    for path in sorted([*Path(kb_dir, "questions").glob("*/*.yaml"), *Path(kb_dir, "curated").glob("*.yaml")]):
        h.update(str(path.relative_to(kb_dir)).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"unreadable")
    return h.hexdigest()[:16]


# Above this many sections (kb chunks' "doc#section", both languages), the section router learns only the sections
# a bank question or a curated answer teaches, with their headings; the others are left to the dense and BM25
# arms. A class and two heading rows per section made training grow with the kb: 1,105 of a 10k-section ingest's
# 1,298 s, hours and a 100k-class model at 100k. The real kb has ~110 sections, every one taught, so it trains
# on every section either way. Settings.router_max_sections (BPO_ROUTER_MAX_SECTIONS) sets it per deployment.
ALL_SECTIONS_MAX = 2000
ALL, TAUGHT = "all-sections", "taught-sections"


@dataclass(frozen=True)
class TrainingSet:
    rows: list[dict]
    problems: list[str]
    mode: str  # ALL: a class per section; TAUGHT: only sections with bank questions or curated phrasings
    reason: str  # why this mode, for meta.json and `bpo-assistant status`
    sections: int  # the kb's sections
    classes: int  # the section labels the rows teach


def training_rows(kb_dir: Path, chunks, max_sections: int = ALL_SECTIONS_MAX) -> tuple[list[dict], list[str]]:
    """Bank questions, section headings and curated phrasings as rows; problems found on the way."""
    found = training_set(kb_dir, chunks, max_sections)
    return found.rows, found.problems


def training_set(kb_dir: Path, chunks, max_sections: int = ALL_SECTIONS_MAX) -> TrainingSet:
    """The rows (bank, then headings, then curated: the order the router has always been trained in) and the
    mode that chose their headings."""
    sections = {(c.lang, f"{c.doc_id}#{c.section_id}"): c for c in chunks}
    bank, problems = _bank_rows(kb_dir, sections)
    curated = _curated_rows(kb_dir, sections, problems)
    if len(sections) <= max_sections:
        mode, keep = ALL, None
        reason = f"{len(sections)} sections ≤ router_max_sections {max_sections}: a class per section"
    else:
        mode, keep = TAUGHT, {r["section"] for r in (*bank, *curated)}
        reason = (f"{len(sections)} sections > router_max_sections {max_sections}: only the {len(keep)} sections "
                  f"with bank questions or curated answers; the others are ranked by dense + BM25 retrieval")
    # filtered before sorting: at 100k sections the sort of every key cost 3 s of a re-ingest
    headings = [{"text": text, "lang": lang, "section": label, "kind": "heading", "path": "", "line": 0}
                for lang, label in sorted(k for k in sections if keep is None or k[1] in keep)
                for c in (sections[(lang, label)],) for text in (c.section_title, f"{c.title} {c.section_title}")]
    rows = bank + headings + curated
    _label_curated(rows)
    rows = _dedupe(rows)
    return TrainingSet(rows, problems, mode, reason, len(sections), len({r["section"] for r in rows}))


def _bank_rows(kb_dir: Path, sections: dict) -> tuple[list[dict], list[str]]:
    bank, problems = load_bank(kb_dir)
    rows: list[dict] = []
    for q in bank:
        if (q.lang, q.label) not in sections:
            problems.append(f"{q.path}:{q.line}: unknown section {q.label} ({q.lang}); question not used")
            continue
        rows.append({"text": q.text, "lang": q.lang, "section": q.label, "kind": "bank", "path": q.path,
                     "line": q.line})
    return rows, problems


def _curated_rows(kb_dir: Path, sections: dict, problems: list[str]) -> list[dict]:
    from bpo_assistant.curated import CuratedError, duplicates, load_raw

    rows: list[dict] = []
    skipped = duplicates(kb_dir)
    for path in sorted(Path(kb_dir, "curated").glob("*.yaml")):
        if path in skipped:
            problems.append(f"{path}:1: not used for routing ({skipped[path]})")
            continue
        try:
            data = load_raw(path)
            lang, first = str(data["lang"]), data["sources"][0]
            label = f"{first['doc']}#{first['section']}"
            questions = [e for q in data["questions"] for e in expand(str(q))]
        except (CuratedError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(f"{path}:1: not used for routing ({exc})")
            continue
        base = curated_base(str(data["id"]), lang)
        rows += [{"text": q, "lang": lang, "section": label, "curated": base, "kind": "curated", "path": str(path),
                  "line": 0} for q in questions if (lang, label) in sections]
    return rows


def _label_curated(rows: list[dict]) -> None:
    """Bank questions of a section that leads exactly one curated answer teach that answer too (a question the
    section's bank holds is one its curated overview answers); every other bank question is "none"."""
    leads: dict[str, set[str]] = {}
    for r in rows:
        if r["kind"] == "curated":
            leads.setdefault(r["section"], set()).add(r["curated"])
    for r in rows:
        if r["kind"] == "bank":
            owners = leads.get(r["section"], set())
            r["curated"] = next(iter(owners)) if len(owners) == 1 else NONE


def _dedupe(rows: list[dict]) -> list[dict]:
    """The same text under two labels would teach the router a coin toss; the first one (bank before headings
    and curated) wins, and kb check reports bank duplicates separately."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        key = (r["lang"], r["text"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def previous_rows(prev_dir: Path | None) -> list[dict]:
    """The previous generation's training rows (questions.jsonl), read once for vector reuse and router reuse."""
    if prev_dir is None or not (prev_dir / QUESTIONS_FILE).exists():
        return []
    try:
        return [json.loads(line) for line in (prev_dir / QUESTIONS_FILE).read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError):
        return []


def embed_rows(rows: list[dict], embedder, prev_dir: Path | None, old: list[dict]) -> tuple[np.ndarray, int]:
    """Query vectors for every row, reusing the previous generation's by exact text; (vectors, newly embedded)."""
    cache: dict[str, np.ndarray] = {}
    if old and (prev_dir / VECTORS_FILE).exists():
        vecs = np.load(prev_dir / VECTORS_FILE)
        if len(old) == len(vecs) and vecs.shape[1:] == (embedder.dim,):
            cache = {r["text"]: v for r, v in zip(old, vecs)}
    missing = list(dict.fromkeys(r["text"] for r in rows if r["text"] not in cache))
    for start in range(0, len(missing), 64):
        batch = missing[start : start + 64]
        cache.update(zip(batch, embedder.queries(batch)))
    return np.stack([cache[r["text"]] for r in rows]).astype(np.float32), len(missing)


def build(gdir: Path, kb_dir: Path, chunks, embedder, prev_dir: Path | None,
          max_sections: int = ALL_SECTIONS_MAX) -> dict:
    """Train and write both routers into the generation; returns the summary recorded in meta.json."""
    started = time.monotonic()
    found = training_set(kb_dir, chunks, max_sections)
    rows, problems = found.rows, found.problems
    scope = {"mode": found.mode, "mode_reason": found.reason, "sections": found.sections,
             "router_sections": found.classes}
    if not rows:
        return {"routers": False, **scope, "problems": problems}
    old = previous_rows(prev_dir)
    vectors, embedded = embed_rows(rows, embedder, prev_dir, old)
    embed_s = time.monotonic() - started
    reused = _reuse(gdir, rows, old, prev_dir, embedder.spec)
    if reused is not None:
        _write_rows(gdir, rows, vectors)
        # the same rows whichever mode chose them; the section count (in the reason) is today's
        return {**reused, **scope, "embedded": embedded, "embed_seconds": round(embed_s, 1),
                "reused_from": prev_dir.name, "train_seconds": 0.0, "problems": problems}
    names = [{"question": r["text"], "lang": r["lang"], "path": r["path"], "line": r["line"], "kind": r["kind"]}
             for r in rows]
    summary: dict = {"routers": True, "examples": len(rows), **scope, "embedded": embedded,
                     "embed_seconds": round(embed_s, 1)}
    for name, labels in (("sections", [r["section"] for r in rows]),
                         ("curated", [r.get("curated") or NONE for r in rows])):
        if len(set(labels)) < 2:  # e.g. a kb without curated answers: nothing to choose between
            continue
        router = train(vectors, labels, embedder.spec, names=names)
        router = replace(router, report={**router.report, "mode": found.mode, "mode_reason": found.reason})
        router.save(gdir / f"router-{name}")
        summary[f"{name}_cv_accuracy"] = router.report.get("cv_accuracy")
        summary[f"{name}_cv_top3"] = router.report.get("cv_top3")
    _write_rows(gdir, rows, vectors)
    summary.update(train_seconds=round(time.monotonic() - started - embed_s, 1), problems=problems)
    return summary


def _write_rows(gdir: Path, rows: list[dict], vectors: np.ndarray) -> None:
    (gdir / QUESTIONS_FILE).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                       encoding="utf-8")
    with open(gdir / VECTORS_FILE, "wb") as fh:
        np.save(fh, vectors)


def _reuse(gdir: Path, rows: list[dict], old: list[dict], prev_dir: Path | None, spec: str) -> dict | None:
    """An edit inside a document leaves every training row (bank, headings, curated phrasings) as it was; the
    previous generation's routers are then the very model a retrain would fit (training is seeded), so they are
    copied instead of retrained — retraining took 179 of 208 s of a one-sentence re-ingest at 10k sections
    (benchmarks/scale.py). Returns the previous router summary, or None when anything differs."""
    if not old or not (prev_dir / "meta.json").exists():
        return None
    keys = ("text", "lang", "section", "curated", "kind")
    try:
        summary = json.loads((prev_dir / "meta.json").read_text(encoding="utf-8")).get("router") or {}
    except (OSError, ValueError):
        return None
    if not summary.get("routers") or [tuple(r.get(k) for k in keys) for r in old] != \
            [tuple(r.get(k) for k in keys) for r in rows]:
        return None
    files = [f for name in ("sections", "curated") for f in prev_dir.glob(f"router-{name}.*")]
    for f in files:
        meta = json.loads(f.read_text(encoding="utf-8")) if f.suffix == ".json" else None
        if meta is not None and (meta.get("embedder") != spec or meta.get("version") != ROUTER_VERSION):
            return None
    for f in files:
        shutil.copy2(f, gdir / f.name)
    return {k: v for k, v in summary.items() if k not in ("problems", "reused_from")}
