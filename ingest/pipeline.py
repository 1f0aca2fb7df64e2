"""Ingest, read top to bottom: discover → load → diff against the current manifest → chunk → embed what is
new → write a new generation → swap CURRENT → drop old generations.

Re-running is idempotent: a source whose bytes (or, failing that, parsed content) match the manifest is not
parsed or embedded again, and when nothing changed no embedder is loaded and nothing is written (unless the
current records are gone from Chroma: then they are written again from the stored vectors). Vectors are reused
by the exact text embedded, so an edited document only re-embeds its edited chunks/sentences, and only its
new records are written to Chroma (a delta beside a long-lived base: vectorstore.py).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bpo_assistant import curated
from bpo_assistant.index import CHUNKER_VERSION, INDEX_LAYOUT, IndexMismatch, deployment_id
from bpo_assistant.kbfiles import duplicate_reason
from bpo_assistant.lease import confirm_ingest_lease, ingest_lease
from bpo_assistant.settings import Settings
from bpo_assistant.types import content_hash

from . import derived as derived_tables
from . import routing, rows, store, vectorstore
from .chunking import chunk_document, embed_text
from .loaders import KB_LANGS, LoadError, is_kb_file, load_file
from .sources import discover, file_hash
from .status import cli_status, stack_versions, status_info  # noqa: F401 - cli.py reaches both through this module

BATCH = 32


class IngestError(RuntimeError):
    """Fatal: nothing was written and the previous index is still the current one."""


class EmbedderMismatch(IngestError, IndexMismatch):
    pass


@dataclass
class IngestReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    sentences: int = 0
    seconds: float = 0.0
    generation: str = ""
    embedded: int = 0  # texts actually sent to the embedder (0 when every vector was reused)
    written: bool = False  # a new generation was written and made current
    # seconds: scan (hash, load, chunk), previous (its records), embed (model load too), files, bm25, chroma,
    # router, derived, write (the rest: meta, swap, cleanup)
    timings: dict[str, float] = field(default_factory=dict)
    rebuilt: str = ""  # why an unchanged kb was written again (vectorstore.problem), else empty

    def summary(self) -> str:
        lines = [
            f"{'Ingested' if self.written else 'Index up to date'}: {self.documents} documents "
            f"(added {self.added}, changed {self.changed}, removed {self.removed}, unchanged {self.unchanged}, "
            f"failed {len(self.failed)}); {self.chunks} chunks, {self.sentences} sentences; "
            f"{self.embedded} texts embedded; {self.seconds:.1f} s; generation {self.generation or '-'}"
        ]
        if self.rebuilt:
            lines.append(f"Rebuilt the index because {self.rebuilt} (stored vectors reused)")
        if self.failed:
            lines.append("Skipped (fix and re-run `bpo-assistant ingest`):")
            lines += [f"  {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)

    def to_json(self) -> dict:
        """The report as `ingest --json` prints it; empty strings become null so callers test presence, not ''."""
        return {
            "written": self.written,
            "documents": self.documents,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "chunks": self.chunks,
            "sentences": self.sentences,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
            "timings": {stage: round(s, 3) for stage, s in self.timings.items()},
            "generation": self.generation or None,
            "rebuilt": self.rebuilt or None,
        }


def chunking_params(settings: Settings) -> dict:
    return {"chunker": CHUNKER_VERSION, "chunk_size": settings.chunk_size,
            "overlap": settings.chunk_overlap_sentences}


def run_ingest(settings: Settings, paths=None, rebuild: bool = False, embedder=None,
               progress: bool = True) -> IngestReport:
    """Ingest kb/ (paths=None: kb/ is the full truth) or add/update the given files and folders.

    Raises IngestError (EmbedderMismatch included) when nothing could be written; per-file problems are
    reported in IngestReport.failed instead and never stop the run.
    """
    started = time.monotonic()
    paths = list(paths) if paths else None
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    # The lease (BPO_DATABASE_URL only) excludes ingests on other hosts, the file lock those on this one.
    with ingest_lease(settings), store.ingest_lock(settings):
        prev = store.read_current(settings)
        spec = embedder.spec if embedder is not None else settings.embedder
        if prev and not rebuild and prev.meta.get("embedder") != spec:
            raise EmbedderMismatch(
                f"the index under {settings.data_dir} was built with embedder {prev.meta.get('embedder')!r}, but "
                f"the configured embedder is {spec!r}; re-ingest everything with `bpo-assistant ingest --rebuild`"
            )
        params = chunking_params(settings)
        reuse = prev is not None and not rebuild and prev.manifest.get("chunking") == params
        report, entries, fresh, failures = _diff(settings, prev, paths, rebuild, reuse)
        report.timings["scan"] = time.monotonic() - started

        router_hash = routing.inputs_hash(settings.kb_dir)
        unchanged = (reuse and not fresh and not report.removed and prev.meta.get("router_hash") == router_hash
                     and prev.meta.get("chroma") == store.chroma_target(settings))
        if unchanged:
            # "Up to date" only while the collection still serves: on a shared server someone else may have
            # deleted it, and every question would fail while ingest kept saying all is well.
            report.rebuilt = vectorstore.problem(settings, prev.meta) or ""
        if unchanged and not report.rebuilt:
            # A killed run leaves a generation dir behind; only then clean up.
            previous = store.previous_generation(settings)
            if any(d.name not in (prev.gen, previous) for d in prev.dir.parent.iterdir()):
                store.cleanup(settings, keep=prev.gen, previous=previous)
            return _finish(report, prev.meta, prev.gen, started, written=False)
        if not entries:
            where = ", ".join(map(str, paths)) if paths else f"{settings.kb_dir}/ja, {settings.kb_dir}/en"
            skipped = "".join(f"\n  {p}: {r}" for p, r in report.failed)
            raise IngestError(f"nothing to index: no loadable document in {where}; the previous index (if any) "
                              f"is unchanged{skipped}")
        meta = _write(settings, prev, entries, fresh, failures, spec, embedder, rebuild, progress, report,
                      router_hash)
        return _finish(report, meta, meta["generation"], started, written=True)


def _diff(settings: Settings, prev, paths, rebuild: bool, reuse: bool):
    """Compare the sources with the current manifest: which documents are unchanged (reused as they are),
    new or changed (loaded and chunked now), removed, or broken."""
    old_docs: dict = prev.manifest["docs"] if prev else {}
    old_failed: dict = prev.manifest.get("failed", {}) if prev else {}
    sources, failed = discover(settings, paths, old_docs)
    # Curated answers are not indexed documents, but a duplicate id is skipped at answer time: say so here.
    if paths is None:
        failed += [(str(p), reason) for p, reason in curated.duplicates(settings.kb_dir).items()]
    report = IngestReport(failed=failed)
    entries: dict[str, dict] = {}  # key -> manifest entry of the new generation
    if paths is not None:  # explicit paths add to the index; they never remove from it
        named = {k for k, _ in sources}
        entries.update((k, e) for k, e in old_docs.items() if k not in named)
    fresh: dict[str, tuple] = {}  # key -> (chunks, sentences) of added/changed documents
    failures: dict[str, dict] = {}
    loaded = []
    for key, path in sources:
        old, fhash = old_docs.get(key), file_hash(path, settings)
        if reuse and old and fhash and old["file_hash"] == fhash:
            entries[key] = old
            continue
        if not rebuild and fhash and old_failed.get(key, {}).get("file_hash") == fhash:
            failures[key] = old_failed[key]  # same broken bytes as last time: same reason, no re-parse
            continue
        try:
            loaded.append((key, fhash, load_file(path, settings)))
        except LoadError as exc:
            failures[key] = {"path": str(path), "file_hash": fhash, "reason": exc.reason}
    for key, fhash, doc in _unique_ids(loaded, entries, failures, settings):
        old = old_docs.get(key)
        if reuse and old and old["content_hash"] == doc.content_hash:
            entries[key] = {**old, "file_hash": fhash}  # e.g. only `reviewed:` changed: nothing to re-index
            continue
        try:
            chunks, sentences = chunk_document(doc, settings.chunk_size, settings.chunk_overlap_sentences)
        except ValueError as exc:
            failures[key] = {"path": doc.path, "file_hash": fhash, "reason": str(exc)}
            continue
        fresh[key] = (chunks, sentences)
        entries[key] = {"path": str(Path(doc.path).resolve()), "file_hash": fhash, "content_hash": doc.content_hash,
                        "doc_id": doc.id, "lang": doc.lang, "title": doc.title, "topic": doc.topic,
                        "chunk_ids": [c.id for c in chunks], "sentence_ids": [s.id for s in sentences]}
        report.changed += old is not None
        report.added += old is None
    for key, info in failures.items():
        if key in old_docs and key not in entries and not info.get("duplicate"):
            entries[key] = old_docs[key]  # a broken edit must not silently drop a document that worked
            info = {**info, "reason": info["reason"] + " (the previously indexed version is kept)"}
        report.failed.append((info["path"], info["reason"]))
    report.removed = sum(1 for k in old_docs if k not in entries)
    report.unchanged = sum(1 for k in entries if k not in fresh and k not in failures)
    return report, entries, fresh, failures


def _unique_ids(loaded, entries: dict, failures: dict, settings: Settings):
    """Two documents may not share (lang, id): chunk ids would collide. Among kb documents the first by
    sorted path wins, whether it was loaded now or reused, so the outcome never depends on which file was
    indexed first; every later one is skipped with both files named. Files from elsewhere (two notes.txt in
    different folders) get a suffix from their key instead."""
    kb_dir = settings.kb_dir
    claims = sorted([(k, e["lang"], e["doc_id"], e["path"], None) for k, e in entries.items()
                     if is_kb_file(Path(e["path"]), kb_dir)]
                    + [(k, d.lang, d.id, d.path, (k, h, d)) for k, h, d in loaded if is_kb_file(Path(d.path), kb_dir)])
    taken: dict[tuple[str, str], tuple[str, str]] = {}  # (lang, id) -> (key, path) of the file that has it
    kept = []
    for key, lang, doc_id, path, item in claims:
        first_key, first_path = taken.setdefault((lang, doc_id), (key, path))
        if first_key == key:
            kept += [item] if item else []
            continue
        entries.pop(key, None)
        # No file hash: the skip is decided again next run (the first file may be gone by then).
        failures[key] = {"path": path, "file_hash": None, "duplicate": True,
                         "reason": duplicate_reason(doc_id, lang, first_path)}
    for k, e in entries.items():
        taken.setdefault((e["lang"], e["doc_id"]), (k, e["path"]))
    yield from kept
    for key, fhash, doc in loaded:
        if is_kb_file(Path(doc.path), kb_dir):
            continue
        other = taken.get((doc.lang, doc.id))
        if other is not None and other[0] != key:
            doc = dataclasses.replace(doc, id=f"{doc.id}-{content_hash(key, 6)}")
        taken[(doc.lang, doc.id)] = (key, doc.path)
        yield key, fhash, doc


def _write(settings, prev, entries, fresh, failures, spec, embedder, rebuild, progress, report,
           router_hash: str) -> dict:
    t = time.monotonic()
    same = prev is not None and not rebuild and prev.meta.get("embedder") == spec
    old_docs = prev.docs() if prev else {}
    docs = {key: fresh[key] if key in fresh else old_docs[key] for key in sorted(entries)}
    chunks = [c for key in docs for c in docs[key][0]]
    sentences = [s for key in docs for s in docs[key][1]]
    if not chunks:
        raise IngestError("nothing to index: the documents hold no sentences")
    texts = {"chunks": [embed_text(c) for c in chunks], "sentences": [s.text for s in sentences]}
    # Vectors are reused by the exact text embedded, as long as the embedder is the same one: from the shared
    # store by row (no vector is read), or, once, from the vectors.npz of a generation of the older layout.
    prior, legacy = rows.NO_PRIOR, {}
    if same and prev.shared_vectors:
        old_c, old_s = prev.ordered()
        prior = rows.prior(settings, prev.dir, prev.meta, old_c, old_s,
                           {"chunks": [embed_text(c) for c in old_c], "sentences": [s.text for s in old_s]})
    elif same:
        legacy = prev.legacy_vectors(embed_text)
    report.timings["previous"] = time.monotonic() - t
    missing = list(dict.fromkeys(
        t for kind, recs in (("chunks", chunks), ("sentences", sentences))
        for r, t in zip(recs, texts[kind]) if t not in legacy and rows.find(prior, kind, r, t) is None))
    dim = int(prev.meta["dim"]) if same else None
    if embedder is None:  # the router needs it too (its question vectors are cached by text, like these)
        from bpo_assistant.embeddings import make_embedder

        embedder = make_embedder(spec, settings)
    if missing:
        t = time.monotonic()
        legacy.update(zip(missing, _embed(embedder, missing, progress)))
        report.timings["embed"] = time.monotonic() - t
        dim = embedder.dim
    report.embedded = len(missing)
    gen = store.new_generation_name()
    by_lang = {lang: sum(1 for e in entries.values() if e["lang"] == lang) for lang in KB_LANGS}
    meta = {"generation": gen, "embedder": spec, "dim": dim, "chunker": CHUNKER_VERSION,
            "chunk_size": settings.chunk_size, "chunk_overlap_sentences": settings.chunk_overlap_sentences,
            "chroma": store.chroma_target(settings), "layout": INDEX_LAYOUT,
            "deployment": deployment_id(settings), "versions": stack_versions(),
            "documents": len(entries), "documents_by_lang": by_lang, "chunks": len(chunks),
            "sentences": len(sentences), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest = {"chunking": chunking_params(settings), "docs": entries,
                "failed": {k: v for k, v in failures.items() if k not in entries}}
    # The routers are part of the generation, written before meta.json marks it finished and before CURRENT
    # names it: a killed ingest serves the previous generation with its own routers.
    def derived(gdir: Path) -> dict:
        t = time.monotonic()
        summary = routing.build(gdir, settings.kb_dir, chunks, embedder, prev.dir if prev and not rebuild else None,
                                settings.router_max_sections)
        report.timings["router"] = time.monotonic() - t
        t = time.monotonic()  # after the routers: it reads the question bank they wrote (questions.jsonl)
        tables = derived_tables.build(gdir, chunks, sentences, prev.dir if prev and not rebuild else None)
        report.timings["derived"] = time.monotonic() - t
        return {"router": summary, "router_hash": router_hash, "derived": tables}

    store.write_generation(settings, gen, meta, manifest, docs, set(fresh), prior, texts, legacy, derived,
                           prev.meta if prev and not rebuild else None, prev.dir if prev and not rebuild else None,
                           report.timings)
    previous = prev.gen if prev else None
    confirm_ingest_lease()  # another host's ingest took over a stalled lease: leave CURRENT to it
    store.swap_current(settings, gen, previous)
    store.cleanup(settings, keep=gen, previous=previous)
    return meta


def _embed(embedder, texts: list[str], progress: bool):
    """Batches of similar length (models that pad a batch, like sentence-transformers, waste less), results
    returned in the input order."""
    import numpy as np
    from tqdm import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="embedding", unit="text", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            out[idx] = embedder.passages([texts[i] for i in idx])
            bar.update(len(idx))
    return list(out)


def _finish(report: IngestReport, meta: dict, gen: str, started: float, written: bool) -> IngestReport:
    report.documents, report.chunks, report.sentences = meta["documents"], meta["chunks"], meta["sentences"]
    report.generation, report.written = gen, written
    report.seconds = time.monotonic() - started
    if written:
        report.timings["write"] = report.seconds - sum(report.timings.values())
    return report


def ensure_index(settings: Settings, embedder=None, progress: bool = False) -> IngestReport | None:
    """For `ask`, `eval` and `chat` on first use: ingest kb/ when the index is missing or kb/ changed.

    The check is the no-change path of run_ingest (hash files, compare with the manifest, count the current
    collection; no model load): ~1.5 s, most of it importing chromadb, which the caller needs next anyway.
    Returns the report when it ingested, else None.
    """
    report = run_ingest(settings, embedder=embedder, progress=progress)
    return report if report.written else None


def cli_ingest(settings: Settings, paths, rebuild: bool = False, quiet: bool = False) -> int:
    """Exit code 0: everything indexed; 1: some files skipped (the rest indexed); 2: fatal, nothing written."""
    try:
        report = run_ingest(settings, paths or None, rebuild=rebuild, progress=not quiet)
    except Exception as exc:  # noqa: BLE001 - any failure here is reported the same way, with exit code 2
        print(f"ingest failed: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if report.failed else 0
