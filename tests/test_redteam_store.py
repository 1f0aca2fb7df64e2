"""Issue 13 item 7, the vector store's part: with the Chroma server of BPO_CHROMA_URL down, `status` names it and
fails instead of saying OK, and the chat serves a page naming the URL (no traceback) until the store answers,
then starts in its place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api_server import server_env
from bpo_assistant.ingest.pipeline import run_ingest
from bpo_assistant.ingest.status import cli_status, status_info
from bpo_assistant.settings import REPO_ROOT
from conftest import free_port, make_settings, write_doc


def _small_kb(kb) -> None:
    # the terms `status` probes the keyword index with, so only the store can make it fail
    write_doc(kb, "ja", "itaku", {"definition": "委託とは業務を外部に任せることです。請負と準委任があります。",
                                  "shared": "シェアードサービスは社内の共通業務をまとめます。"})
    write_doc(kb, "en", "itaku", {"definition": "Outsourcing hands work to an outside vendor. BPO hands over a process."})


def test_status_with_the_chroma_server_down_names_it_and_fails(tmp_path, capsys):
    data, kb = tmp_path / "data", tmp_path / "kb"
    _small_kb(kb)
    run_ingest(make_settings(data, kb, embedder="fake:32"), progress=False)
    up = make_settings(data, kb, embedder="fake:32")
    assert cli_status(up) == 0 and "store" not in capsys.readouterr().out.replace("vector store", "")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = make_settings(data, kb, embedder="fake:32", chroma_url=url)
    assert cli_status(down) == 1
    out = capsys.readouterr().out
    assert f"FAILED: vector store unreachable at {url}" in out and "Traceback" not in out
    info = status_info(down)
    assert info["healthy"] is False and url in info["store_error"]


def _chroma_exe() -> str:
    exe = Path(sys.executable).parent / "chroma"  # beside the venv's python, wherever the checkout is
    found = str(exe) if exe.exists() else shutil.which("chroma")
    if not found:
        pytest.skip("the `chroma` CLI is not installed")
    return found


@pytest.mark.slow
@pytest.mark.server
def test_chat_shows_the_unreachable_store_page_then_starts_when_it_answers(tmp_path):
    chroma = _chroma_exe()
    kb, log = tmp_path / "kb", tmp_path / "chat.log"
    _small_kb(kb)
    chroma_port, port = free_port(), free_port()
    url, base = f"http://127.0.0.1:{chroma_port}", f"http://127.0.0.1:{port}"
    env = server_env(make_settings(tmp_path / "data", kb), embedder="fake:32", chroma_url=url)
    procs = []
    try:
        with open(log, "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "bpo_assistant.cli", "chat", "--port", str(port)],
                                          cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err))
        page = _wait(base, procs[0], lambda r: r.status_code == 503, 120)
        assert url in page.text and "ベクトルストアに接続できません" in page.text
        assert page.headers["retry-after"] == "5"
        assert httpx.get(f"{base}/api/ask", timeout=5).status_code == 503  # every route, not only the page
        procs.append(subprocess.Popen([chroma, "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1",
                                       "--port", str(chroma_port)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"}))
        # the chat then checks the index (ingesting the kb into the server) and starts on the same port
        _wait(base, procs[0], lambda r: r.status_code == 200, 300, path="/readyz")
        assert httpx.get(base + "/", timeout=10).status_code == 200
        text = log.read_text(errors="replace")
        assert f"vector store unreachable at {url}" in text and "answers again" in text
        assert "Traceback" not in text
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait(base: str, proc, ok, limit_s: float, path: str = "/") -> httpx.Response:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chat exited {proc.returncode}"
        try:
            r = httpx.get(base + path, timeout=5)
            if ok(r):
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{base}{path} never answered as expected")


def test_ask_says_when_it_waits_for_another_ingest(tmp_path, capsys):
    import threading

    from bpo_assistant import atomic
    from bpo_assistant.ask_cli import cli_ask

    data, kb = tmp_path / "data", tmp_path / "kb"
    _small_kb(kb)
    settings = make_settings(data, kb, embedder="fake:32", log_questions=False)
    run_ingest(settings, progress=False)
    held, release = threading.Event(), threading.Event()

    def other_ingest() -> None:  # stands in for `bpo-assistant ingest` in another process
        with atomic.exclusive(settings.data_path(".ingest.lock")):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=other_ingest)
    holder.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    try:
        assert cli_ask(settings, "委託とは？", None, as_json=False) == 0
    finally:
        release.set()
        holder.join()
    captured = capsys.readouterr()
    assert f"waiting for another ingest of {data} to finish" in captured.err and captured.out.strip()  # then it answers (the fake embedder refuses)
