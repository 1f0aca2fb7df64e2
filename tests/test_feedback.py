"""Feedback store (SQLite, WAL) and its export as eval-suite cases."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from bpo_assistant.cli import main as cli_main
from bpo_assistant.feedback import FeedbackStore, cli_export, export_cases, to_case
from bpo_assistant.types import Citation
from conftest import make_settings

C1 = Citation(1, "bpo-overview", "BPOとは", "BPOの定義", "definition", "ja", "BPOは経営手法です。")
C2 = Citation(2, "contract-types", "契約形態", "請負契約", "ukeoi", "ja", "請負契約は成果物の完成を約束します。")
C3 = Citation(3, "bpo-overview", "BPOとは", "目的", "purpose", "ja", "目的はコア業務への集中です。")


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data")


@pytest.fixture
def store(settings):
    return FeedbackStore(settings)


def add(store, **kw):
    base = dict(question="BPOとは何ですか？", answer="BPOは経営手法です[1]。", rating=1, citations=[C1],
                standalone_query="BPOとは何ですか?", lang="ja")
    base.update(kw)
    return store.add(**base)


def test_store_is_wal_at_data_dir(settings, store):
    add(store)
    assert store.path == settings.data_dir / "feedback.sqlite" and store.path.exists()
    assert store.journal_mode() == "wal"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = {r[1] for r in conn.execute("PRAGMA table_info(feedback)")}
    assert {"question", "answer", "citations", "standalone_query", "rating", "reason", "comment", "created"} <= cols


def test_insert_update_delete(store):
    hist = [{"role": "user", "content": "請負契約とは？"}, {"role": "assistant", "content": "成果物です[1]。"},
            {"role": "system", "content": "dropped"}]
    rid = add(store, rating=-1, citations=[C1, C2], history=hist, kind="extractive")
    row = store.get(rid)
    assert row["rating"] == -1 and row["reason"] == "" and row["kind"] == "extractive"
    assert [c["doc_id"] for c in row["citations"]] == ["bpo-overview", "contract-types"]
    assert row["citations"][0] == C1.to_json()
    assert row["history"] == hist[:2] and row["standalone_query"] == "BPOとは何ですか?"
    assert row["created"] > 0
    assert store.update(rid, reason="outdated", comment="  2025年の情報です  ")
    row = store.get(rid)
    assert row["reason"] == "outdated" and row["comment"] == "  2025年の情報です  "
    assert store.update(rid, reason="not-a-reason") and store.get(rid)["reason"] == ""
    assert store.update(rid, rating=1) and store.get(rid)["rating"] == 1
    assert store.delete(rid) and store.get(rid) is None and not store.update(rid, rating=1)
    with pytest.raises(ValueError):
        add(store, rating=0)


def test_long_text_is_clipped(store):
    rid = add(store, comment="x" * 10_000, question="q" * 50_000)
    row = store.get(rid)
    assert len(row["comment"]) == 2_000 and len(row["question"]) == 20_000


def test_concurrent_writers(store):
    errors = []

    def work(i):
        try:
            for j in range(10):
                rid = add(store, question=f"q{i}-{j}", rating=-1 if j % 2 else 1)
                store.update(rid, reason="other", comment=str(j))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(store.rows()) == 80 and len(store.rows(only_negative=True)) == 40


def test_export_case_format(store):
    hist = [{"role": "user", "content": "請負契約とは？"}, {"role": "assistant", "content": "成果物です[1]。"}]
    rid = add(store, rating=-1, citations=[C1, C2, C3], history=hist, question="じゃあ準委任とはどう違う？")
    store.update(rid, reason="wrong_citation", comment="別の節です")
    case = export_cases(store)[0]
    assert case["id"] == f"feedback-{rid}"
    assert case["question"] == "じゃあ準委任とはどう違う？" and case["lang"] == "ja" and case["history"] == hist
    assert case["expect"] == {"refuse": False, "doc_ids": ["bpo-overview", "contract-types"], "facts": []}
    assert case["feedback"]["reason"] == "wrong_citation" and case["feedback"]["comment"] == "別の節です"


def test_export_omits_empty_history_and_doc_ids(store):
    add(store, citations=[], history=[], rating=-1)
    case = export_cases(store)[0]
    assert "history" not in case and case["expect"] == {"refuse": False, "facts": []}


def test_exported_cases_load_as_suite_cases(store):
    suite = pytest.importorskip("evals.suite")
    add(store, rating=-1, history=[{"role": "user", "content": "前の質問"}])
    add(store, rating=1, citations=[])
    for case in export_cases(store):
        parsed = suite.parse_case(json.loads(json.dumps(case, ensure_ascii=False)))
        assert parsed.id == case["id"] and parsed.expect.refuse is False


def test_cli_export_only_negative(settings, store, tmp_path, capsys):
    good = add(store, rating=1, question="良い")
    bad = add(store, rating=-1, question="悪い")
    store.update(bad, reason="incomplete")
    out = tmp_path / "out" / "cases.jsonl"
    assert cli_export(settings, only_negative=True, out=str(out)) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in lines] == [f"feedback-{bad}"]
    assert "悪い" in lines[0]  # not \u-escaped
    capsys.readouterr()
    assert cli_export(settings, only_negative=False, out=None) == 0
    ids = [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()]
    assert ids == [f"feedback-{good}", f"feedback-{bad}"]


def test_cli_export_without_db(settings, capsys):
    assert cli_export(settings, only_negative=False, out=None) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no feedback" in captured.err
    assert not (settings.data_dir / "feedback.sqlite").exists()


def test_cli_entry_point(settings, store, tmp_path, monkeypatch, capsys):
    add(store, rating=-1)
    monkeypatch.setenv("BPO_DATA_DIR", str(settings.data_dir))
    out = tmp_path / "neg.jsonl"
    assert cli_main(["feedback", "export", "--only-negative", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["id"].startswith("feedback-")


def test_to_case_ignores_bad_citation_entries():
    row = {"id": 7, "question": "q", "lang": "en", "history": [], "rating": -1,
           "citations": [{"doc_id": ""}, {"x": 1}, "junk", {"doc_id": "a"}, {"doc_id": "a"}]}
    assert to_case(row)["expect"] == {"refuse": False, "doc_ids": ["a"], "facts": []}
