"""Retrieval figures per arm on the dev suite: dense alone, keyword alone, and fused variants.

Usage: .venv/bin/python benchmarks/retrieval.py [--suite evals/suites/dev.jsonl]
Prints recall@1, recall@3 and MRR (document level, over in-scope cases with doc_ids) for each configuration,
split by language. These figures chose Settings.keyword_weight and the Japanese-only keyword gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = {  # name: (use_dense, use_keyword (None = Japanese only), keyword_weight, definition arm weight)
    "dense only": (True, False, 0.0, 0.0),
    "keyword only": (False, True, 1.0, 0.0),
    "fused, kw 0.10, all languages": (True, True, 0.10, 0.0),
    "fused, kw 0.10, Japanese only": (True, None, 0.10, 0.0),
    "fused, kw 0.05, Japanese only": (True, None, 0.05, 0.0),
    "fused, kw 0.02, Japanese only": (True, None, 0.02, 0.0),
    "fused, kw 0.02, all languages": (True, True, 0.02, 0.0),
    "fused, kw 0.02, Japanese only + definition arm 0.05": (True, None, 0.02, 0.05),
    "fused, kw 0.02, all languages + definition arm 0.05": (True, True, 0.02, 0.05),
}


def doc_ranks(hits) -> list[str]:
    return list(dict.fromkeys(h.chunk.doc_id for h in hits))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default=str(ROOT / "evals/suites/dev.jsonl"))
    args = parser.parse_args()
    from bpo_assistant.settings import Settings, set_offline_env

    set_offline_env()
    from bpo_assistant.ingest.pipeline import ensure_index

    settings = Settings()
    ensure_index(settings)
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.followup import standalone_query
    from bpo_assistant.guard import focus, strip_markup
    from bpo_assistant.retrieval import HybridRetriever
    from bpo_assistant.text import detect_lang

    a = Assistant.from_settings(settings)
    cases = [json.loads(line) for line in Path(args.suite).read_text(encoding="utf-8").splitlines() if line.strip()]
    cases = [c for c in cases if c.get("expect", {}).get("doc_ids") and not c["expect"].get("refuse")]
    queries = []
    for c in cases:
        q = standalone_query(focus(strip_markup(c["question"])), c.get("history", []), a.glossary, a._names_own_subject)
        lang = detect_lang(q)
        queries.append((q, lang, set(c["expect"]["doc_ids"]), a.embedder.queries([a.glossary.canonicalize(q, lang)])[0]))
    print(f"{len(queries)} in-scope cases ({sum(1 for q in queries if q[1] == 'ja')} ja, "
          f"{sum(1 for q in queries if q[1] == 'en')} en)")
    print(f"{'configuration':52s} {'lang':4s} {'R@1':>6s} {'R@3':>6s} {'MRR':>6s}")
    for name, (use_dense, use_kw, kw_weight, definition) in CONFIGS.items():
        s = settings.model_copy(update={"keyword_weight": kw_weight, "definition_weight": definition})
        r = HybridRetriever(index=a.index, embedder=a.embedder, glossary=a.glossary, settings=s,
                            use_dense=use_dense, use_keyword=use_kw)
        for lang in ("ja", "en", "all"):
            subset = [q for q in queries if lang == "all" or q[1] == lang]
            r1 = r3 = mrr = 0.0
            for q, qlang, gold, qvec in subset:
                ranks = doc_ranks(r.search(q, lang=qlang, qvec=qvec))
                pos = next((i for i, d in enumerate(ranks) if d in gold), None)
                r1 += pos == 0
                r3 += pos is not None and pos < 3
                mrr += 1 / (pos + 1) if pos is not None else 0
            n = len(subset) or 1
            print(f"{name:52s} {lang:4s} {r1 / n:6.3f} {r3 / n:6.3f} {mrr / n:6.3f}")


if __name__ == "__main__":
    main()
