"""The question log: what a knowledge owner later triages is really stored, privately, and only as long as set."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from bpo_assistant.cli import main
from bpo_assistant.feedback import FeedbackStore
from bpo_assistant.owners.db import engine_for, questions
from bpo_assistant.owners.qlog import QuestionLog, attach_question_log, link_feedback
from bpo_assistant.types import Answer, AnswerEvent, Citation
from conftest import make_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Observed:
    """Only what attach_question_log needs from an Assistant: its observer list."""

    def __init__(self) -> None:
        self.observers: list = []


def rows(settings) -> list:
    with engine_for(settings).connect() as conn:
        return conn.execute(select(questions).order_by(questions.c.id)).all()


def event(question="請負契約とは？", at=None, user=None, refused=False) -> AnswerEvent:
    cit = Citation(1, "contract-types", "契約形態", "請負契約", "ukeoi", "ja", "請負契約は…")
    answer = Answer("請負契約は成果物の完成を約束する契約です。[1]", citations=() if refused else (cit,),
                    refused=refused, kind="refusal" if refused else "extractive",
                    reason="gate: off-topic" if refused else "router", confidence=0.2 if refused else 0.91)
    return AnswerEvent(question, "ja", None, answer, (("contract-types#ukeoi", 0.91), ("contract-types#jun-inin", 0.05)),
                       12.5, "g1", "", user, at or time.time())


def test_cli_ask_logs_the_question_with_its_routing_and_citations(real_settings, monkeypatch, capsys):
    monkeypatch.setenv("BPO_KB_DIR", str(real_settings.kb_dir))
    monkeypatch.setenv("BPO_DATA_DIR", str(real_settings.data_dir))
    before = len(rows(real_settings))
    assert main(["ask", "BPOのメリットは？", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    new = rows(real_settings)[before:]
    assert len(new) == 1
    row = new[0]
    assert (row.question, row.channel, row.lang, row.refused, row.user) == ("BPOのメリットは？", "cli", "ja", False, None)
    assert json.loads(row.cited) == answer["sections"] and row.kind == answer["kind"]
    routed = json.loads(row.routed)
    assert 1 <= len(routed) <= 3 and routed[0][0].startswith("bpo-benefits#") and row.confidence > 0
    assert row.latency_ms > 0 and row.generation


def test_a_refusal_is_logged_with_its_reason(assistant, tmp_path):
    settings = make_settings(tmp_path / "data")
    qlog = QuestionLog(settings, channel="chat")
    assistant.observers.append(qlog)
    try:
        answer = assistant.ask("今日の東京の天気は？")
    finally:
        assistant.observers.remove(qlog)
        qlog.close()
    (row,) = rows(settings)
    assert answer.refused and row.refused and row.kind == "refusal"
    assert row.reason == answer.reason and row.reason and row.channel == "chat"


def test_switched_off_nothing_is_recorded(tmp_path):
    settings = make_settings(tmp_path / "data", log_questions=False)
    target = _Observed()
    assert attach_question_log(target, settings) is None  # (the answer log of bpo_assistant.logs is not ours)
    assert not [o for o in target.observers if isinstance(o, QuestionLog)]
    assert not (tmp_path / "data" / "owners.sqlite").exists()


def test_user_is_kept_only_when_a_login_is_configured(tmp_path):
    anonymous = make_settings(tmp_path / "a")
    login = make_settings(tmp_path / "b", auth_file=tmp_path / "users.txt")
    for settings in (anonymous, login):
        qlog = QuestionLog(settings)
        qlog(event(user="tanaka"))
        qlog.close()
    assert rows(anonymous)[0].user is None
    assert rows(login)[0].user == "tanaka"


def test_rows_past_retention_are_purged_on_start(tmp_path):
    settings = make_settings(tmp_path / "data", log_days=30)
    qlog = QuestionLog(settings)
    qlog(event("古い質問", at=time.time() - 31 * 86_400))
    qlog(event("新しい質問", at=time.time() - 29 * 86_400))
    qlog.close()
    assert len(rows(settings)) == 2
    target = _Observed()
    attach_question_log(target, settings).close()  # a restart
    assert [r.question for r in rows(settings)] == ["新しい質問"]


def test_attach_is_idempotent(tmp_path):
    settings = make_settings(tmp_path / "data")
    target = _Observed()
    first = attach_question_log(target, settings)
    assert attach_question_log(target, settings) is first
    assert [o for o in target.observers if isinstance(o, QuestionLog)] == [first]
    first.close()


def test_a_thumbs_down_links_to_the_logged_question(tmp_path):
    settings = make_settings(tmp_path / "data")
    qlog = QuestionLog(settings)
    qlog(event("請負契約とは？", at=time.time() - 60))
    qlog(event("準委任契約とは？", at=time.time() - 50))
    qlog.close()
    fid = FeedbackStore(settings).add(question="請負契約とは？", answer="…", rating=-1, lang="ja",
                                      reason="incomplete")
    assert link_feedback(settings) == 1
    linked = {r.question: (r.feedback_id, r.rating) for r in rows(settings)}
    assert linked == {"請負契約とは？": (fid, -1), "準委任契約とは？": (None, None)}
    assert link_feedback(settings) == 0  # nothing changed since


def test_daily_kpis_match_a_hand_count(tmp_path):
    from bpo_assistant.owners.kpi import daily

    settings = make_settings(tmp_path / "data")
    noon = time.mktime(time.strptime("2026-11-30 12:00", "%Y-%m-%d %H:%M"))
    qlog = QuestionLog(settings)
    # 11-30: 4 asked, 1 refused, 2 rated (one 👎); 12-01: 2 asked, 2 refused; the admin's re-check is not counted
    for q, refused, at in [("請負契約とは？", False, noon), ("準委任とは？", False, noon + 60),
                           ("BPOとは？", False, noon + 120), ("天気は？", True, noon + 180),
                           ("株価は？", True, noon + 86_400), ("夕飯は？", True, noon + 86_460)]:
        qlog(event(q, at=at, refused=refused))
    qlog(AnswerEvent("請負契約とは？", "ja", None, Answer("…"), (), 1.0, "g", "admin", None, noon + 200))
    qlog.close()
    store = FeedbackStore(settings)
    for q, rating in (("請負契約とは？", -1), ("準委任とは？", 1)):
        fid = store.add(question=q, answer="…", rating=rating, lang="ja")
        with __import__("sqlite3").connect(settings.data_path("owners.sqlite")) as conn:  # the shared database
            conn.execute("UPDATE feedback SET created = ? WHERE id = ?", (noon + 150, fid))
    days = daily(settings)
    assert [(d.period, d.asked, d.answered, d.refused, d.rated, d.disliked) for d in days] == [
        ("2026-11-30", 4, 3, 1, 2, 1), ("2026-12-01", 2, 0, 2, 0, 0)]
    assert (days[0].answer_rate, days[0].refusal_rate, days[0].dislike_rate) == (0.75, 0.25, 0.5)
    assert days[1].row()[2:5] == ["0%", "100%", "–"]
    assert (days[0].row()[6], days[1].row()[6]) == ("0%", "–")  # no curated answer; no answer at all


def _at(day: str) -> float:
    return time.mktime(time.strptime(f"{day} 12:00", "%Y-%m-%d %H:%M"))


def _answer_event(day: str, kind: str, reason: str = "", channel: str = "") -> AnswerEvent:
    refused = kind in ("refusal", "error")
    answer = Answer("…", refused=refused, kind=kind, reason=reason)
    return AnswerEvent("質問", "ja", None, answer, (), 1.0, "g", channel, None, _at(day))


def test_weekly_kpis_refusal_reasons_and_curated_share_match_a_hand_count(tmp_path):
    from bpo_assistant.owners.kpi import daily, weekly

    settings = make_settings(tmp_path / "data")
    qlog = QuestionLog(settings)
    # 2026-W52 is 12-21 (Mon) … 12-27 (Sun). 2026 begins on a Thursday, so it has a week 53, which holds 2027-01-01.
    for ev in [_answer_event("2026-12-21", "curated"), _answer_event("2026-12-22", "extractive"),
               _answer_event("2026-12-23", "refusal", "weak dense match 0.812"),
               _answer_event("2026-12-27", "refusal", "weak dense match 0.790"),
               _answer_event("2026-12-27", "refusal", "names 'トヨタ', which the kb does not mention"),
               _answer_event("2026-12-28", "refusal", "names 'ソニー', which the kb does not mention"),
               _answer_event("2027-01-01", "curated"), _answer_event("2027-01-02", "error"),
               _answer_event("2027-01-02", "refusal", "weak dense match 0.7", channel="admin"),  # not counted
               _answer_event("2027-01-04", "comparison")]:
        qlog(ev)
    qlog.close()
    weeks = weekly(settings)
    assert [(w.period, w.asked, w.answered, w.refused, w.curated) for w in weeks] == [
        ("2026-W52", 5, 2, 3, 1), ("2026-W53", 3, 1, 2, 1), ("2027-W01", 1, 1, 0, 0)]
    names = "names …, which the kb does not mention"
    assert [w.reasons for w in weeks] == [(("weak dense match", 2), (names, 1)), (("error", 1), (names, 1)), ()]
    assert (weeks[0].curated_share, weeks[1].curated_share, weeks[2].curated_share) == (0.5, 1.0, 0.0)
    assert weeks[0].reason_rate("weak dense match") == 0.4 and weeks[0].reason_rate("error") == 0.0
    assert weeks[0].row() == ["2026-W52", 5, "40%", "60%", "–", 0, "50%", "1 ms"]  # every event took 1.0 ms
    assert weeks[0].reason_rows() == [["2026-W52", "weak dense match", 2, "40%", "67%"],
                                      ["2026-W52", names, 1, "20%", "33%"]]
    # the same rows by day: the ISO week is the sum of its days
    days = daily(settings)
    assert sum(d.asked for d in days if d.period <= "2026-12-27") == weeks[0].asked
    assert [d.period for d in days][-3:] == ["2027-01-01", "2027-01-02", "2027-01-04"]
    assert len(weekly(settings, since=_at("2026-12-28") - 3600)) == 2


def test_p95_latency_per_day_and_week_matches_a_hand_count_and_is_on_the_page(tmp_path):
    from bpo_assistant.owners.kpi import FORMULAS, daily, weekly
    from bpo_assistant.ui.admin import AdminService

    settings = make_settings(tmp_path / "data")
    qlog = QuestionLog(settings)
    mon, tue = _at("2026-11-30"), _at("2026-12-01")  # one ISO week, 2026-W49
    for at, ms, refused, channel in [(mon, 400, False, ""), (mon + 1, 100, False, ""), (mon + 2, 1000, True, ""),
                                     (mon + 3, 300, False, ""), (mon + 4, 200, False, ""),
                                     (mon + 5, 9999, False, "admin"),  # the owner's re-check: not counted
                                     (tue, 250, True, "")]:
        answer = Answer("…", refused=refused, kind="refusal" if refused else "extractive")
        qlog(AnswerEvent("質問", "ja", None, answer, (), ms, "g", channel, None, at))
    qlog.close()
    # By hand, linear interpolation between the closest ranks (numpy's default, the eval report's p95):
    # 11-30 sorted [100 200 300 400 1000], position (5-1)·0.95 = 3.8 → 400 + 0.8·(1000-400) = 880 (the refusal counts)
    # 12-01 [250] → 250;  the week [100 200 250 300 400 1000], position 5·0.95 = 4.75 → 400 + 0.75·600 = 850
    days, weeks = daily(settings), weekly(settings)
    assert [(d.period, round(d.p95_ms, 6)) for d in days] == [("2026-11-30", 880.0), ("2026-12-01", 250.0)]
    assert [(w.period, round(w.p95_ms, 6)) for w in weeks] == [("2026-W49", 850.0)]
    assert weeks[0].to_json()["p95_latency_ms"] == 850.0
    # the admin tab's daily and weekly tables, under the column the page labels, with the formula written above
    day_rows, _, week_rows, _ = AdminService(None, settings, None).kpis()
    col = len(day_rows[0]) - 1
    assert [r[col] for r in day_rows] == ["880 ms", "250 ms"] and week_rows[0][col] == "850 ms"
    assert "(n−1)×0.95" in FORMULAS["p95_latency"] and "bpo_assistant.stats.percentile" in FORMULAS["p95_latency"]


def test_the_dashboard_and_the_eval_report_share_one_percentile_and_the_runtime_needs_no_evals():
    import subprocess
    import sys

    from bpo_assistant import stats
    from bpo_assistant.owners import kpi
    from bpo_assistant.evals import metrics

    assert kpi.percentile is stats.percentile and metrics.percentile is stats.percentile
    assert stats.percentile([100, 200, 300, 400, 1000], 95) == pytest.approx(880.0)
    # the runtime package loads its KPIs without the eval package on the path
    code = ("import sys; sys.modules['evals'] = None; import bpo_assistant.owners.kpi, bpo_assistant.ui.admin; "
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_admin_tab_writes_every_kpi_formula_and_labels_the_p95_column(tmp_path):
    from test_ui_app import ObservedAssistant

    from bpo_assistant.owners.kpi import COLUMNS, FORMULAS
    from bpo_assistant.ui.app import build_app

    demo = build_app(ObservedAssistant(), make_settings(tmp_path / "data"))
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    assert all(f in texts for f in FORMULAS.values())
    tables = [b for b in demo.blocks.values() if getattr(b, "elem_id", "") in ("bpo-admin-kpi", "bpo-admin-kpi-week")]
    assert len(tables) == 2 and all(t.headers[-1] == COLUMNS[-1] == "p95 応答時間 / p95 latency" for t in tables)
    demo.session_janitor.stop()


@pytest.mark.parametrize("reason, kind, category", [
    ("weak dense match 0.812", "refusal", "weak dense match"),
    ("question words unknown to the kb (0.33)", "refusal", "question words unknown to the kb"),
    ("names 'トヨタ', which the kb does not mention", "refusal", "names …, which the kb does not mention"),
    ("compares places the kb does not describe (大阪, 福岡)", "refusal", "compares places the kb does not describe"),
    ("asks about a law (派遣法) the kb does not cover", "refusal", "asks about a law the kb does not cover"),
    ("請負 is covered outside topic overview", "refusal", "covered outside the topic filter"),
    ("asks for a price, wage or market size the kb does not state", "refusal",
     "asks for a price, wage or market size the kb does not state"),
    ("", "error", "error"),
    ("", "", "unknown"),
])
def test_a_refusal_reason_loses_only_its_details(reason, kind, category):
    from bpo_assistant.owners.kpi import reason_category

    assert reason_category(reason, kind) == category


@pytest.mark.skipif(not __import__("os").environ.get("BPO_TEST_POSTGRES_URL"),
                    reason="set BPO_TEST_POSTGRES_URL=postgresql+psycopg://… to run on PostgreSQL")
def test_the_same_tables_work_on_postgresql(tmp_path):
    import os

    from bpo_assistant.owners.db import OUT_OF_SCOPE, metadata
    from bpo_assistant.owners.kpi import daily, weekly
    from bpo_assistant.owners.triage import items, set_status

    settings = make_settings(tmp_path / "data", database_url=os.environ["BPO_TEST_POSTGRES_URL"], log_days=30)
    engine = engine_for(settings)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    qlog = QuestionLog(settings, channel="chat")
    qlog(event("古い質問", at=time.time() - 31 * 86_400, refused=True))
    qlog(event("社員食堂のメニューは？", refused=True))
    qlog(event("請負契約とは？"))
    qlog.close()
    assert qlog.purge() == 1
    (item,) = items(settings)
    assert (item.question, item.why, item.routed[0][0]) == ("社員食堂のメニューは？", "refused", "contract-types#ukeoi")
    assert set_status(settings, [item.id], OUT_OF_SCOPE, "sato") == ([item.id], [])
    assert "already 対象外 by sato" in set_status(settings, [item.id], OUT_OF_SCOPE, "suzuki")[1][0]
    assert [(d.asked, d.refused) for d in daily(settings)] == [(2, 1)]
    assert [(w.asked, w.refused, w.curated) for w in weekly(settings)] == [(2, 1, 0)]
    assert engine.dialect.name == "postgresql"


def test_log_stats_cli_prints_the_same_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    settings = make_settings(tmp_path / "data")
    qlog = QuestionLog(settings)
    for ev in [_answer_event("2026-12-31", "curated"), _answer_event("2027-01-01", "refusal", "weak dense match 0.8"),
               _answer_event("2027-01-05", "extractive")]:
        qlog(ev)
    qlog.close()
    assert main(["log", "stats", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(w["period"], w["asked"], w["curated_share"]) for w in out["weekly"]] == [("2026-W53", 2, 1.0),
                                                                                     ("2027-W01", 1, 0.0)]
    assert out["weekly"][0]["refusals_by_reason"] == [{"reason": "weak dense match", "count": 1, "rate": 0.5}]
    assert [d["period"] for d in out["daily"]] == ["2026-12-31", "2027-01-01", "2027-01-05"]
    assert main(["log", "stats", "--since", "2027-01-01"]) == 0
    text = capsys.readouterr().out
    assert "2026-W53\t1\t0%\t100%" in text and "2026-12-31" not in text and "weak dense match\t1" in text
    assert main(["log", "stats", "--since", "01/01/2027"]) == 2
