"""Feedback store (the shared database: SQLite WAL by default, PostgreSQL with BPO_DATABASE_URL), the one-time
migration of a legacy data_dir/feedback.sqlite, and the export as eval-suite cases."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading

import pytest

from bpo_assistant.cli import main as cli_main
from bpo_assistant.feedback import FeedbackStore, cli_export, export_cases, to_case
from bpo_assistant.owners.db import engine_for, feedback
from bpo_assistant.types import Citation
from conftest import make_settings

C1 = Citation(1, "bpo-overview", "BPOとは", "BPOの定義", "definition", "ja", "BPOは経営手法です。")
C2 = Citation(2, "contract-types", "契約形態", "請負契約", "ukeoi", "ja", "請負契約は成果物の完成を約束します。")
C3 = Citation(3, "bpo-overview", "BPOとは", "目的", "purpose", "ja", "目的はコア業務への集中です。")


PG = os.environ.get("BPO_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG, reason="set BPO_TEST_POSTGRES_URL=postgresql+psycopg://… to run on PostgreSQL"))])
def settings(request, tmp_path):
    """The same tests on the default SQLite file and on PostgreSQL (a fresh feedback table each)."""
    if request.param == "sqlite":
        return make_settings(tmp_path / "data")
    settings = make_settings(tmp_path / "data", database_url=PG)
    engine = engine_for(settings)
    feedback.drop(engine, checkfirst=True)
    feedback.create(engine)
    return settings


@pytest.fixture
def store(settings):
    return FeedbackStore(settings)


def add(store, **kw):
    base = dict(question="BPOとは何ですか？", answer="BPOは経営手法です[1]。", rating=1, citations=[C1],
                standalone_query="BPOとは何ですか?", lang="ja")
    base.update(kw)
    return store.add(**base)


def test_store_is_the_owners_database_in_wal(tmp_path):
    settings = make_settings(tmp_path / "data")
    store = FeedbackStore(settings)
    add(store)
    assert store.path == (settings.data_dir / "owners.sqlite").resolve() and store.path.exists()
    assert not (settings.data_dir / "feedback.sqlite").exists()
    assert store.journal_mode() == "wal"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = {r[1] for r in conn.execute("PRAGMA table_info(feedback)")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"question", "answer", "citations", "standalone_query", "rating", "reason", "comment", "created"} <= cols
    assert {"feedback", "question_log", "triage_status"} <= tables  # one database, one engine


def test_a_withdrawn_id_never_comes_back(store):
    first = add(store)
    assert store.delete(first)
    assert add(store) == first + 1  # a question-log row linked to `first` must not pick up this rating


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
    suite = pytest.importorskip("bpo_assistant.evals.suite")
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


def test_cli_export_without_feedback(settings, capsys):
    assert cli_export(settings, only_negative=False, out=None) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no feedback" in captured.err
    assert not (settings.data_dir / "feedback.sqlite").exists()


def test_cli_export_names_an_unreachable_database_without_its_password(tmp_path, capsys):
    settings = make_settings(tmp_path / "data", database_url="postgresql+psycopg://u:s3cret@127.0.0.1:1/none")
    assert cli_export(settings) == 1
    err = capsys.readouterr().err
    assert "cannot read feedback from postgresql+psycopg://u:***@127.0.0.1:1/none" in err and "s3cret" not in err


def test_cli_entry_point(settings, store, tmp_path, monkeypatch, capsys):
    add(store, rating=-1)
    monkeypatch.setenv("BPO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("BPO_DATABASE_URL", settings.database_url)
    out = tmp_path / "neg.jsonl"
    assert cli_main(["feedback", "export", "--only-negative", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["id"].startswith("feedback-")


def test_to_case_ignores_bad_citation_entries():
    row = {"id": 7, "question": "q", "lang": "en", "history": [], "rating": -1,
           "citations": [{"doc_id": ""}, {"x": 1}, "junk", {"doc_id": "a"}, {"doc_id": "a"}]}
    assert to_case(row)["expect"] == {"refuse": False, "doc_ids": ["a"], "facts": []}


# -- the one-time move of a legacy data_dir/feedback.sqlite ------------------------------------------------------

LEGACY_SCHEMA = """
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, updated REAL NOT NULL,
    session TEXT NOT NULL DEFAULT '', message_index INTEGER, question TEXT NOT NULL, lang TEXT NOT NULL DEFAULT 'ja',
    history TEXT NOT NULL DEFAULT '[]', answer TEXT NOT NULL DEFAULT '', citations TEXT NOT NULL DEFAULT '[]',
    standalone_query TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL DEFAULT '', refused INTEGER NOT NULL DEFAULT 0,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)), reason TEXT NOT NULL DEFAULT '', comment TEXT NOT NULL DEFAULT ''
);
"""


def legacy_file(data_dir, n=3, deleted=()):
    """A feedback.sqlite as the store before issue 11 wrote it (WAL, rows possibly still in the -wal file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / "feedback.sqlite")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(LEGACY_SCHEMA)
    cites = json.dumps([C1.to_json()], ensure_ascii=False)
    for i in range(1, n + 1):
        conn.execute("INSERT INTO feedback (created, updated, session, question, answer, citations, rating, reason,"
                     " comment, refused) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (1_700_000_000.123456 + i, 1_700_000_000.5 + i, f"s{i}", f"旧い質問{i}", "答え", cites,
                      -1 if i % 2 else 1, "outdated" if i % 2 else "", f"コメント{i}", i == 3))
    for i in deleted:
        conn.execute("DELETE FROM feedback WHERE id = ?", (i,))
    conn.commit()
    return conn  # left open: closing would checkpoint the WAL, and the migration must read rows still in it


def test_a_legacy_feedback_file_is_migrated_once_with_its_ids_and_kept(settings, caplog):
    old = legacy_file(settings.data_dir, n=4, deleted=(2,))
    with caplog.at_level(logging.WARNING, logger="bpo_assistant.feedback_migrate"):
        store = FeedbackStore(settings)
    old.close()
    rows = store.rows()
    assert [r["id"] for r in rows] == [1, 3, 4]  # ids kept: question-log rows linked to them still point right
    assert [(r["question"], r["rating"], r["reason"], r["comment"], r["refused"]) for r in rows] == [
        ("旧い質問1", -1, "outdated", "コメント1", False), ("旧い質問3", -1, "outdated", "コメント3", True),
        ("旧い質問4", 1, "", "コメント4", False)]
    assert rows[0]["citations"] == [C1.to_json()] and rows[0]["created"] == 1_700_000_001.123456
    assert store.migrated.copied == 3 and store.migrated.already == 0
    assert not (settings.data_dir / "feedback.sqlite").exists()
    kept = list(settings.data_dir.glob("feedback.sqlite.migrated-*"))
    assert [str(k) for k in kept if not k.name.endswith(("-wal", "-shm"))] == [store.migrated.kept_as]
    with sqlite3.connect(store.migrated.kept_as) as conn:  # the user's file is kept, whole
        assert conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 3
    line = " ".join(r.getMessage() for r in caplog.records)
    assert "migrated" in line and "copied 3 feedback row(s) (2 👎 of 3 in the file, 0 already present)" in line
    assert add(store) == 5  # after the copied ids, never one of them again (nor the deleted 2 … the file's max)
    again = FeedbackStore(settings)  # a restart: nothing to migrate, nothing doubled
    assert again.migrated is None and len(again.rows()) == 4


def test_an_interrupted_migration_does_not_copy_twice(settings):
    from bpo_assistant.feedback_migrate import _copy, _read

    legacy_file(settings.data_dir, n=3).close()
    store = FeedbackStore(path=settings.data_dir / "unused.sqlite")  # does not migrate
    engine = engine_for(settings)
    assert _copy(_read(settings.data_dir / "feedback.sqlite"), engine) == (3, 0)  # killed before the rename
    store = FeedbackStore(settings)
    assert (store.migrated.copied, store.migrated.already) == (0, 3) and len(store.rows()) == 3


def test_migrating_into_a_table_with_other_hosts_ratings_takes_new_ids(settings):
    other = FeedbackStore(settings)  # another replica already rated twice in the shared table
    first = [add(other, question="別ホスト1"), add(other, question="別ホスト2")]
    legacy_file(settings.data_dir, n=3).close()
    store = FeedbackStore(settings)
    rows = store.rows()
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5 and [r["id"] for r in rows][:2] == first
    assert sorted(r["question"] for r in rows[2:]) == ["旧い質問1", "旧い質問2", "旧い質問3"]
    assert add(store) > max(r["id"] for r in rows)


def test_replicas_starting_together_migrate_once(settings):
    legacy_file(settings.data_dir, n=5).close()
    stores, errors = [], []

    def start():
        try:
            stores.append(FeedbackStore(settings))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(stores[0].rows()) == 5
    assert sorted(s.migrated.copied for s in stores if s.migrated) == [5]


def test_an_unreadable_legacy_file_is_left_in_place(settings, caplog):
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "feedback.sqlite").write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="bpo_assistant.feedback_migrate"):
        store = FeedbackStore(settings)
    assert store.migrated.copied == 0 and "unreadable" in store.migrated.reason
    assert (settings.data_dir / "feedback.sqlite").read_bytes().startswith(b"not a database")
    assert "left in place" in caplog.text
    assert add(store) and len(store.rows()) == 1  # the chat still records new ratings
