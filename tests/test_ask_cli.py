"""`bpo-assistant ask` as a script would call it: one JSON object with the documented keys, history and topic."""

from __future__ import annotations

import json

import pytest

from bpo_assistant.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEYS = {"answer", "refused", "curated", "standalone_query", "citations", "latency_ms"}


@pytest.fixture
def use_real_index(real_settings, monkeypatch):
    monkeypatch.setenv("BPO_KB_DIR", str(real_settings.kb_dir))
    monkeypatch.setenv("BPO_DATA_DIR", str(real_settings.data_dir))
    monkeypatch.setenv("BPO_EMBEDDER", real_settings.embedder)


def run_json(capsys, *argv) -> dict:
    assert main(["ask", *argv, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # exactly one JSON object, nothing else on stdout
    return json.loads(out[0])


def test_json_answer_has_the_documented_keys_and_cited_sources(use_real_index, capsys):
    data = run_json(capsys, "BPOのメリットは？")
    assert KEYS <= set(data)
    assert data["refused"] is False and data["citations"]
    for c in data["citations"]:
        assert {"n", "doc_id", "title", "section", "lang", "text"} <= set(c) and c["text"]
        assert f"[{c['n']}]" in data["answer"]


def test_history_file_turns_a_follow_up_into_a_standalone_query(use_real_index, capsys, tmp_path):
    history = tmp_path / "h.json"
    history.write_text(json.dumps([{"role": "user", "content": "請負契約とは？"},
                                   {"role": "assistant", "content": "請負契約は成果物の完成を約束する契約です。"}],
                                  ensure_ascii=False), encoding="utf-8")
    data = run_json(capsys, "じゃあ準委任とはどう違う？", "--history", str(history))
    assert "請負" in data["standalone_query"] and not data["refused"]


def test_topic_option_limits_sources(use_real_index, capsys):
    data = run_json(capsys, "導入するとき何に気をつければいい？", "--topic", "precautions")
    assert {c["doc_id"] for c in data["citations"]} == {"bpo-precautions"}


@pytest.mark.parametrize("argv, message", [
    (["BPOとは？", "--topic", "nope"], "unknown topic 'nope'"),
    (["BPOとは？", "--history", "/nonexistent/h.json"], "/nonexistent/h.json"),
])
def test_bad_options_exit_2_with_a_specific_message(use_real_index, capsys, argv, message):
    assert main(["ask", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_kb_with_nothing_to_index_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "kb" / "ja").mkdir(parents=True)
    monkeypatch.setenv("BPO_KB_DIR", str(tmp_path / "kb"))
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BPO_EMBEDDER", "fake:32")
    assert main(["ask", "BPOとは？"]) == 2
    err = capsys.readouterr().err
    assert "building the index" in err and "error: nothing to index" in err and "Traceback" not in err


def test_a_question_typed_with_a_full_width_mark_gets_no_search_query_line(use_real_index, capsys):
    assert main(["ask", "BPOとは？"]) == 0
    assert "search query" not in capsys.readouterr().out


def test_a_lone_surrogate_in_the_question_or_history_is_answered_and_logged(use_real_index, capsys, tmp_path):
    """Pasted from a broken UTF-16 source: MeCab, the embedder and SQLite cannot encode a lone surrogate."""
    history = tmp_path / "h.json"
    history.write_text('[{"role": "user", "content": "\\u8acb\\u8ca0\\ud800\\u3063\\u3066\\uff1f"}]', encoding="utf-8")
    data = run_json(capsys, "BPO\udcffとは？", "--history", str(history))
    assert data["citations"] and "Traceback" not in capsys.readouterr().err
