"""`bpo-assistant kb check` / `kb coverage`: validate the knowledge base and report fact coverage.

Every problem is printed as `path:line: message` so editors can jump to it; the exit status is non-zero
when anything is wrong.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from . import atomic
from .bank import load_bank
from .curated import CuratedError, combine, current_hashes, duplicates, load_raw, marker_problem
from .kbfiles import load_kb_docs
from .limits import Limits
from .settings import Settings


def check_kb(kb_dir: Path, settings: Settings | None = None) -> list[str]:
    settings = settings or Settings(kb_dir=kb_dir)
    docs, errors = load_kb_docs(kb_dir, Limits.of(settings))
    problems = [str(e) for e in errors] + check_other_files(Path(kb_dir), settings)
    ids_by_lang: dict[str, dict[str, str]] = {}
    for (lang, doc_id), doc in docs.items():
        ids_by_lang.setdefault(lang, {})[doc_id] = doc.path
    for doc_id, path in sorted(ids_by_lang.get("ja", {}).items()):
        twin = docs.get(("en", doc_id))
        if twin is None:
            problems.append(f"{path}:1: no English twin kb/en/…md with id {doc_id!r}")
            continue
        ja_ids = [s.id for s in docs[("ja", doc_id)].sections]
        en_ids = [s.id for s in twin.sections]
        if ja_ids != en_ids:
            problems.append(f"{twin.path}:1: sections {en_ids} differ from the Japanese twin's {ja_ids}")
    for doc_id, path in sorted(ids_by_lang.get("en", {}).items()):
        if ("ja", doc_id) not in docs:
            problems.append(f"{path}:1: no Japanese twin for id {doc_id!r}")
    problems += check_comparisons(kb_dir / "comparisons.yaml", docs)
    problems += check_glossary(kb_dir / "glossary.yaml", docs)
    problems += check_curated(kb_dir, docs)[0]
    problems += check_bank(kb_dir, docs)
    return problems


def check_other_files(kb_dir: Path, settings: Settings) -> list[str]:
    """Every file ingest would skip beyond kb/<lang>/*.md (which load_kb_docs checks in full): found by ingest's
    own walk and read by its own loader, so `kb check` names exactly what `ingest` will skip, with its reason."""
    from bpo_assistant.ingest.loaders import LoadError, is_kb_file, load_file
    from bpo_assistant.ingest.sources import discover

    settings = settings.model_copy(update={"kb_dir": kb_dir})
    sources, failed = discover(settings, None, {})
    problems = [f"{path}:1: {reason}" for path, reason in failed if not is_kb_file(Path(path), kb_dir)]
    for _, path in sources:
        if is_kb_file(path, kb_dir):
            continue
        try:
            load_file(path, settings)
        except LoadError as exc:
            problems.append(f"{path}:1: {exc.reason}")
    return problems


MIN_BANK = {"ja": 10, "en": 5}  # expected questions per section (issue: answer the questions people ask)


def check_bank(kb_dir: Path, docs) -> list[str]:
    """Unknown sections, a question filed under two sections, and sections below the minimum. A kb without a
    kb/questions/ folder is valid (the query path then ranks by retrieval alone) and gets no minimum check."""
    if not Path(kb_dir, "questions").is_dir():
        return []
    counts, problems = _bank_counts(kb_dir, docs)
    for bank, _lang, label, n, needed in _short(kb_dir, docs, counts):
        problems.append(f"{bank}:1: section {label} has {n} expected question(s); at least {needed} needed")
    return problems


def short_sections(kb_dir: Path, docs) -> list[tuple[Path, str, str, int, int]]:
    """(bank file, lang, "doc#section", questions, minimum) of each section below MIN_BANK, counted exactly as
    `kb check` counts them (the maintenance list shows the same sections the check reports)."""
    if not Path(kb_dir, "questions").is_dir():
        return []
    return _short(kb_dir, docs, _bank_counts(kb_dir, docs)[0])


def _bank_counts(kb_dir: Path, docs) -> tuple[dict[tuple[str, str], int], list[str]]:
    """Questions per (lang, "doc#section") that resolve, and the bank's problems (unknown section, a question
    under two sections)."""
    questions, problems = load_bank(kb_dir)
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], object] = {}
    for q in questions:
        doc = docs.get((q.lang, q.doc_id))
        if doc is None or q.section_id not in {s.id for s in doc.sections}:
            problems.append(f"{q.path}:{q.line}: unknown section {q.label} ({q.lang})")
            continue
        key = (q.lang, q.text.strip().lower())
        other = first.setdefault(key, q)
        if other is not q and other.label != q.label:
            problems.append(f"{q.path}:{q.line}: {q.text!r} is listed under {q.label} and under {other.label} "
                            f"({other.path}:{other.line})")
        counts[(q.lang, q.label)] = counts.get((q.lang, q.label), 0) + 1
    return counts, problems


def _short(kb_dir: Path, docs, counts) -> list[tuple[Path, str, str, int, int]]:
    out = []
    for (lang, doc_id), doc in sorted(docs.items()):
        bank = Path(kb_dir, "questions", lang, f"{doc_id}.yaml")
        for section in doc.sections:
            n = counts.get((lang, f"{doc_id}#{section.id}"), 0)
            if n < MIN_BANK.get(lang, 5):
                out.append((bank, lang, f"{doc_id}#{section.id}", n, MIN_BANK.get(lang, 5)))
    return out


def routing_notes(settings: Settings, min_p: float = 0.5) -> list[str]:
    """Bank questions that the router's cross-validation sends to another document with confidence: the
    question reads like that document's, so reword it, move it, or sharpen the section. Read from the current
    generation's router report (written at ingest); not counted as problems, since near neighbours (two
    sections of one document) disagree in CV without anything being wrong."""
    import json

    from .index import current_generation, generation_dir

    gen = current_generation(settings)
    path = generation_dir(settings, gen) / "router-sections.json" if gen else None
    if path is None or not path.exists():
        return []
    report = json.loads(path.read_text(encoding="utf-8")).get("report", {})
    notes = []
    for m in report.get("misroutes", []):
        if m.get("kind") == "bank" and m["p"] >= min_p and m["label"].split("#")[0] != m["routed_to"].split("#")[0]:
            notes.append(f"{m['path']}:{m['line']}: routing: {m['question']!r} ({m['label']}) goes to "
                         f"{m['routed_to']} in cross-validation (p={m['p']:.2f})")
    return notes


def check_comparisons(path: Path, docs) -> list[str]:
    if not path.exists():
        return [f"{path}:1: missing"]
    text = path.read_text(encoding="utf-8")
    problems = []
    for table in (yaml.safe_load(text) or {}).get("tables", []):
        for row in table.get("rows", []):
            for col, cell in row.get("cells", {}).items():
                for lang in ("ja", "en"):
                    doc = docs.get((lang, cell.get("doc")))
                    if doc is None or cell.get("section") not in {s.id for s in doc.sections}:
                        line = _line_of(text, f"section: {cell.get('section')}")
                        problems.append(f"{path}:{line}: cell {table['id']}/{row['id']}/{col} source "
                                        f"{cell.get('doc')}#{cell.get('section')} does not resolve in {lang}")
    return problems


def check_glossary(path: Path, docs) -> list[str]:
    if not path.exists():
        return [f"{path}:1: missing"]
    text = path.read_text(encoding="utf-8")
    problems = []
    for entry in yaml.safe_load(text) or []:
        line = _line_of(text, f"term: {entry.get('term')}")
        for name in ("term", "reading", "variants", "definition_ja", "definition_en", "doc"):
            if not entry.get(name):
                problems.append(f"{path}:{line}: term {entry.get('term')!r} has no {name}")
        for lang in ("ja", "en"):
            doc = docs.get((lang, entry.get("doc")))
            if doc is None or (entry.get("section") and entry["section"] not in {s.id for s in doc.sections}):
                problems.append(f"{path}:{line}: term {entry.get('term')!r} points at "
                                f"{entry.get('doc')}#{entry.get('section')}, which does not resolve in {lang}")
    return problems


def check_curated(kb_dir: Path, docs, fix_hashes: bool = False) -> tuple[list[str], int]:
    problems, fixed = [], 0
    skipped = duplicates(kb_dir)
    for path in sorted((kb_dir / "curated").glob("*.yaml")):
        if path in skipped:  # as in answering and ingest: the first file with an id is the answer
            problems.append(f"{path}:1: {skipped[path]}")
            continue
        try:
            data = load_raw(path)
        except (CuratedError, yaml.YAMLError) as exc:
            problems.append(str(exc))
            continue
        sources = [(str(s.get("doc")), str(s.get("section")), str(s.get("hash", ""))) for s in data["sources"]]
        now = current_hashes(sources, str(data["lang"]), docs)
        text = path.read_text(encoding="utf-8")
        for (doc_id, section_id, stamped), h in zip(sources, now):
            line = _line_of(text, f"section: {section_id}")
            if h is None:
                problems.append(f"{path}:{line}: source {doc_id}#{section_id} ({data['lang']}) does not resolve")
            elif stamped and stamped != h and not fix_hashes:
                problems.append(f"{path}:{line}: stale: section {doc_id}#{section_id} changed since review "
                                f"(hash {stamped} → {h}); re-review, then `kb check --fix-hashes`")
        problem = marker_problem(str(data["answer"]), len(sources))
        if problem:
            problems.append(f"{path}:{_line_of(text, 'answer:')}: {problem}")
        if None in now:
            continue
        if fix_hashes:
            for s, h in zip(data["sources"], now):
                s["hash"] = h
            data["source_hash"] = combine(now)
            atomic.write_text(path, yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000))
            fixed += 1
        elif not data.get("source_hash") or any(not s[2] for s in sources):
            problems.append(f"{path}:1: no source_hash yet; review the answer, then `kb check --fix-hashes`")
        elif data["source_hash"] != combine(now) and all(s[2] == h for s, h in zip(sources, now)):
            problems.append(f"{path}:1: stale: source_hash does not match the cited sections")
    return problems, fixed


class _Dumper(yaml.SafeDumper):
    """Keeps multi-line answers as readable `|` blocks when --fix-hashes rewrites a file."""


_Dumper.add_representer(
    str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None)
)


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return i
    return 1


def cli_check(settings: Settings, fix_hashes: bool = False) -> int:
    kb_dir = Path(settings.kb_dir)
    if fix_hashes:
        docs, _ = load_kb_docs(kb_dir)
        _, fixed = check_curated(kb_dir, docs, fix_hashes=True)
        print(f"re-stamped source hashes of {fixed} curated answers")
    problems = check_kb(kb_dir, settings)
    for p in problems:
        print(p)
    notes = routing_notes(settings)
    for n in notes:
        print(n)
    n_curated = len(list((kb_dir / "curated").glob("*.yaml")))
    print(f"kb check: {len(problems)} problem(s); {n_curated} curated answers; {len(notes)} routing note(s)")
    return 1 if problems else 0


def cli_coverage(settings: Settings, as_json: bool = False) -> int:
    """Exit 0: every fact stated in both languages; 1: some are not (or the list is empty); 2: no readable list."""
    import json
    import sys

    from bpo_assistant.evals.coverage import CoverageError, coverage

    try:
        result = coverage(settings)
    except (CoverageError, OSError) as exc:
        print(f"kb coverage: {exc}", file=sys.stderr)
        if as_json:
            print(json.dumps({"error": str(exc), "exit_code": 2}, ensure_ascii=False))
        return 2
    # an empty fact list proves nothing, so it is not a pass (its shares are None)
    code = 0 if result["ja"] == 1.0 and result["en"] == 1.0 else 1
    if as_json:
        print(json.dumps({**result, "exit_code": code}, ensure_ascii=False, indent=2))
        return code

    def share(x):
        return "n/a" if x is None else f"{x:.0%}"

    print(f"facts covered: ja {share(result['ja'])}  en {share(result['en'])} (of {result['facts']})")
    for miss in result["missing"]:
        print(f"  missing [{miss['lang']}] {miss['id']}: {miss['reason']} ({miss['fact']})")
    return code
