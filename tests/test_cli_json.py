"""Machine-readable CLI output (issue 12): `ingest --json` and `kb coverage --json` put exactly one JSON object
on stdout with the exit codes of the human form, and `eval` draws progress only on a terminal unless told.

Run in-process through `bpo_assistant.cli.main` with the fake embedder, so no model is loaded."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest
from conftest import make_settings, write_doc

from bpo_assistant.cli import _parser, main
from bpo_assistant.types import Answer, Citation
from bpo_assistant.evals.runner import cli_eval


class TTY(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The CLI reads BPO_* from the environment: a developer's own values must not leak into these runs."""
    for key in [k for k in os.environ if k.startswith("BPO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BPO_KB_DIR", str(tmp_path / "kb"))
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BPO_EMBEDDER", "fake:32")
    return tmp_path


def write_small_kb(kb) -> None:
    write_doc(kb, "ja", "itaku", {"definition": "委託とは業務を外部に任せることです。\nBPOは業務プロセスをまとめて委託します。"})
    write_doc(kb, "en", "itaku", {"definition": "Outsourcing hands work to an outside vendor.\nBPO hands over a process."})


def one_object(out: str) -> dict:
    """json.loads of the whole stdout: fails if anything but one JSON value was printed."""
    return json.loads(out)


# --- ingest --json ------------------------------------------------------------------------------------------

def test_ingest_json_reports_added_then_unchanged(env, capsys):
    write_small_kb(env / "kb")
    assert main(["ingest", "--json"]) == 0
    first = one_object(capsys.readouterr().out)
    assert first["written"] is True and first["exit_code"] == 0
    assert (first["added"], first["changed"], first["removed"], first["unchanged"]) == (2, 0, 0, 0)
    assert first["documents"] == 2 and first["failed"] == []
    assert first["chunks"] >= 2 and first["sentences"] >= 4 and first["embedded"] > 0
    assert isinstance(first["generation"], str) and first["generation"]
    assert first["rebuilt"] is None and first["seconds"] >= 0 and "scan" in first["timings"]

    assert main(["ingest", "--json"]) == 0
    again = one_object(capsys.readouterr().out)
    assert again["written"] is False and again["unchanged"] == 2 and again["added"] == 0
    assert again["embedded"] == 0 and again["generation"] == first["generation"]


def test_ingest_json_names_each_skipped_file_and_exits_1(env, capsys):
    write_small_kb(env / "kb")
    bad = env / "kb" / "ja" / "broken.md"
    bad.write_text("---\nid: broken\ntitle: [x\nlang: ja\n---\n\n## A {#a}\n\n本文です。\n", encoding="utf-8")
    assert main(["ingest", "--json"]) == 1
    captured = capsys.readouterr()
    report = one_object(captured.out)
    assert report["exit_code"] == 1 and report["added"] == 2
    assert [f["path"] for f in report["failed"]] == [str(bad)]
    assert "front matter is not valid YAML" in report["failed"][0]["reason"]
    # the human summary is not mixed into stdout, but the skipped file is still named for a person reading the log
    assert "Skipped" not in captured.out and f"skipped {bad}" in captured.err


def test_ingest_json_fatal_error_is_one_object_and_exit_2(env, capsys, monkeypatch):
    write_small_kb(env / "kb")
    assert main(["ingest", "--json", "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("BPO_EMBEDDER", "fake:16")  # a different embedder than the index was built with
    assert main(["ingest", "--json"]) == 2
    captured = capsys.readouterr()
    result = one_object(captured.out)
    assert result["exit_code"] == 2 and "--rebuild" in result["error"]
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("ingest failed: ")


def test_ingest_json_draws_the_bar_only_on_a_terminal(env, capsys, monkeypatch):
    write_small_kb(env / "kb")
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert main(["ingest", "--json"]) == 0
    assert "embedding" not in sys.stderr.getvalue()
    one_object(capsys.readouterr().out)

    tty = TTY()
    monkeypatch.setattr("sys.stderr", tty)
    assert main(["ingest", "--json", "--rebuild"]) == 0
    assert "embedding" in tty.getvalue()
    assert one_object(capsys.readouterr().out)["written"] is True


# --- kb coverage --json -------------------------------------------------------------------------------------

def test_kb_coverage_json_on_the_shipped_kb(env, capsys, monkeypatch):
    from bpo_assistant.settings import REPO_ROOT

    monkeypatch.setenv("BPO_KB_DIR", str(REPO_ROOT / "kb"))
    code = main(["kb", "coverage", "--json"])
    result = one_object(capsys.readouterr().out)
    assert code == result["exit_code"] == (0 if result["ja"] == result["en"] == 1.0 else 1)
    assert result["facts"] > 0 and set(result["covered"]) == {"ja", "en"}


def test_kb_coverage_json_lists_what_a_small_kb_misses(env, capsys):
    write_small_kb(env / "kb")
    assert main(["kb", "coverage", "--json"]) == 1
    result = one_object(capsys.readouterr().out)
    assert result["exit_code"] == 1 and result["ja"] < 1.0 and result["en"] < 1.0
    miss = result["missing"][0]
    assert set(miss) == {"id", "lang", "fact", "reason"} and "not in kb/" in miss["reason"]


def test_kb_coverage_without_a_fact_list_is_one_line_and_exit_2(env, capsys, monkeypatch):
    monkeypatch.setattr("bpo_assistant.evals.coverage.seed_facts_path", lambda: env / "nowhere.yaml")
    assert main(["kb", "coverage", "--json"]) == 2
    captured = capsys.readouterr()
    assert one_object(captured.out) == {"error": f"no fact list at {env / 'nowhere.yaml'}", "exit_code": 2}
    assert main(["kb", "coverage"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == f"kb coverage: no fact list at {env / 'nowhere.yaml'}"


def test_kb_coverage_of_an_empty_fact_list_is_not_a_pass(env, capsys, monkeypatch):
    facts = env / "facts.yaml"
    facts.write_text("[]\n", encoding="utf-8")
    monkeypatch.setattr("bpo_assistant.evals.coverage.seed_facts_path", lambda: facts)
    assert main(["kb", "coverage"]) == 1
    assert "ja n/a  en n/a (of 0)" in capsys.readouterr().out


# --- eval progress ------------------------------------------------------------------------------------------

class Assistant:
    index = None

    def ask(self, question, history=()):
        cite = Citation(n=1, doc_id="d", title="t", section="s", section_id="x", lang="ja", text="q")
        return Answer(text="答えです。", citations=(cite,), retrieved=(), refused=False)


def eval_stderr(tmp_path, monkeypatch, stderr: io.StringIO, *flags: str) -> str:
    suite = tmp_path / "suite.jsonl"
    rows = [{"id": f"c{i}", "question": f"q{i}", "lang": "ja", "expect": {"refuse": False}} for i in range(3)]
    suite.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = _parser().parse_args(["eval", "--suite", str(suite), "--json", *flags])
    monkeypatch.setattr("sys.stderr", stderr)
    settings = make_settings(tmp_path / "data", embedder="fake:32")
    assert cli_eval(settings, args, assistant_factory=lambda s: Assistant()) == 0
    return stderr.getvalue()


@pytest.mark.parametrize("stderr_cls, flags, drawn", [
    (io.StringIO, (), False),               # CI log: no bar
    (TTY, (), True),                        # a person at a terminal: the bar
    (TTY, ("--no-progress",), False),
    (io.StringIO, ("--progress",), True),
])
def test_eval_progress_follows_the_terminal_unless_told(tmp_path, monkeypatch, capsys, stderr_cls, flags, drawn):
    err = eval_stderr(tmp_path, monkeypatch, stderr_cls(), *flags)
    assert ("3/3" in err) is drawn, err  # tqdm's "n/total" count
    assert one_object(capsys.readouterr().out)["cases"] == 3
