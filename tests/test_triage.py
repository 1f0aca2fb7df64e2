"""The triage queue: what failed reaches it, grouped so an owner fixes a theme once, with who changed what."""

from __future__ import annotations

import json
import time

import pytest

from bpo_assistant.cli import main
from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant.feedback import FeedbackStore
from bpo_assistant.owners.db import OPEN, OUT_OF_SCOPE, RESOLVED
from bpo_assistant.owners.qlog import QuestionLog
from bpo_assistant.owners.triage import TriageError, bank_center, items, queue, set_status, themes
from bpo_assistant.types import Answer, AnswerEvent, Citation
from conftest import make_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def log_events(settings, specs) -> None:
    """specs: (question, kind, refused, confidence, seconds ago)."""
    qlog = QuestionLog(settings)
    cit = Citation(1, "bpo-overview", "BPO", "定義", "definition", "ja", "…")
    for question, kind, refused, conf, ago in specs:
        answer = Answer("…", citations=() if refused else (cit,), refused=refused, kind=kind,
                        reason="gate" if refused else "router", confidence=conf)
        qlog(AnswerEvent(question, "ja", None, answer, (("bpo-overview#definition", conf),), 10.0, "g", "chat",
                         None, time.time() - ago))
    qlog.close()


@pytest.fixture
def logged(tmp_path):
    settings = make_settings(tmp_path / "data")
    log_events(settings, [
        ("社員食堂のメニューは？", "refusal", True, 0.1, 300),
        ("社員食堂のメニューは？", "refusal", True, 0.1, 200),
        ("BPOとは？", "extractive", False, 0.95, 150),  # answered with confidence: not in the queue
        ("BPOの歴史は？", "extractive", False, 0.30, 100),  # low confidence
        ("請負契約とは？", "extractive", False, 0.90, 50),  # confident, but disliked below
        ("", "prompt", False, 0.0, 40),
    ])
    FeedbackStore(settings).add(question="請負契約とは？", answer="…", rating=-1, lang="ja", reason="incomplete")
    return settings


def test_refused_disliked_and_low_confidence_questions_reach_the_queue(logged):
    found = {i.question: i.why for i in items(logged)}
    assert found == {"社員食堂のメニューは？": "refused", "BPOの歴史は？": "low-confidence", "請負契約とは？": "disliked"}


def test_themes_come_most_frequent_first_then_newest(logged):
    order = [th.label for th in themes(items(logged), FakeEmbeddings(32), None, 0.35)]
    assert order == ["社員食堂のメニューは？", "請負契約とは？", "BPOの歴史は？"]


def test_status_and_who_changed_it_are_kept_and_a_second_resolve_is_told(logged):
    ids = [i.id for i in items(logged) if i.question == "社員食堂のメニューは？"]
    changed, skipped = set_status(logged, ids, OUT_OF_SCOPE, "sato")
    assert changed == ids and not skipped
    assert {i.question for i in items(logged)} == {"BPOの歴史は？", "請負契約とは？"}  # default: open ones
    closed = [i for i in items(logged, statuses=(OUT_OF_SCOPE,))]
    assert {(i.status, i.changed_by) for i in closed} == {(OUT_OF_SCOPE, "sato")}
    changed, skipped = set_status(logged, ids[:1], RESOLVED, "suzuki")
    assert changed == [] and "already 対象外 by sato" in skipped[0]


def test_bad_status_or_missing_name_is_refused_with_the_allowed_values(logged):
    with pytest.raises(TriageError, match="未対応, 対応中, 対応済み, 対象外"):
        set_status(logged, [1], "done", "sato")
    with pytest.raises(TriageError, match="who changed it"):
        set_status(logged, [1], OPEN, "")


@pytest.mark.slow
def test_japanese_paraphrases_share_a_theme_and_an_unrelated_question_does_not(assistant, tmp_path):
    settings = make_settings(tmp_path / "data")
    paraphrases = ["請求書の再発行はどうすればいいですか？", "請求書をもう一度発行してもらうには？",
                   "請求書を再発行してほしい", "請求書の再発行手続きを教えて"]
    cost = ["BPOの費用相場はどれくらい？", "BPOってどのくらいお金がかかるの？", "BPOを頼むと料金はいくら？"]
    log_events(settings, [(q, "refusal", True, 0.1, 100 + n) for n, q in
                          enumerate([*paraphrases, *cost, "社員食堂のメニューは？", "BPOの利点を教えて"])])
    found = themes(items(settings), assistant.embedder, bank_center(assistant), settings.triage_theme_distance)
    groups = sorted(sorted(i.question for i in th.items) for th in found)
    assert sorted(paraphrases) in groups and sorted(cost) in groups
    assert ["社員食堂のメニューは？"] in groups and ["BPOの利点を教えて"] in groups


@pytest.mark.slow
def test_triage_cli_lists_a_refused_question_as_json(real_settings, assistant, monkeypatch, capsys):
    settings = real_settings
    qlog = QuestionLog(settings, channel="chat")
    assistant.observers.append(qlog)
    try:
        assistant.ask("今日の東京の天気は？")
    finally:
        assistant.observers.remove(qlog)
        qlog.close()
    monkeypatch.setenv("BPO_KB_DIR", str(settings.kb_dir))
    monkeypatch.setenv("BPO_DATA_DIR", str(settings.data_dir))
    assert main(["triage", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    hit = [i for th in data for i in th["items"] if i["question"] == "今日の東京の天気は？"]
    assert hit and hit[0]["why"] == "refused" and hit[0]["status"] == OPEN
    assert main(["triage", "--status", "done"]) == 2
    assert queue(settings, assistant)  # the same queue through the API the admin tab uses


def test_triage_resolve_cli_fixes_and_closes_by_id(kb_copy, tmp_path, monkeypatch, capsys):
    settings = make_settings(tmp_path / "data", kb_copy)
    log_events(settings, [("BPOの語源を教えて", "refusal", True, 0.1, 60), ("社員食堂のメニューは？", "refusal", True, 0.1, 30)])
    monkeypatch.setenv("BPO_KB_DIR", str(kb_copy))
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    ids = {i.question: i.id for i in items(settings)}
    assert main(["triage", "resolve", str(ids["BPOの語源を教えて"]), "--as", "question:bpo-overview#definition",
                 "--by", "sato"]) == 0
    assert "+    - BPOの語源を教えて" in capsys.readouterr().out
    suite = tmp_path / "triage.jsonl"
    assert main(["triage", "resolve", str(ids["社員食堂のメニューは？"]), "--as", f"case:{suite}", "--by", "sato"]) == 0
    assert json.loads(suite.read_text(encoding="utf-8"))["expect"] == {"refuse": True}
    assert {(i.question, i.status, i.changed_by) for i in items(settings, statuses=None)} == {
        ("BPOの語源を教えて", RESOLVED, "sato"), ("社員食堂のメニューは？", "対応中", "sato")}
    assert main(["triage", "resolve", "999", "--as", "out-of-scope"]) == 2
    assert "no question #999" in capsys.readouterr().err
    assert main(["triage", "resolve", str(ids["BPOの語源を教えて"]), "--as", "alias:PC"]) == 2
    assert main(["triage", "resolve", str(ids["社員食堂のメニューは？"]), "--as", "alias:BPO", "--alias", "外注"]) == 1
    assert "already used by another term" in capsys.readouterr().err
    assert main(["triage", "resolve", str(ids["BPOの語源を教えて"]), "--as", "alias:アウトソーシング", "--alias", "外出し",
                 "--by", "sato"]) == 0
    assert "+  variants: [アウトソーシング" in capsys.readouterr().out


@pytest.mark.parametrize("others", [False, True])  # the withdrawn 👎 was the store's only row, or one of several
def test_a_withdrawn_thumbs_down_leaves_no_triage_item_and_no_dislike(tmp_path, others):
    """Through the chat's own handlers: answered → 👎 (the owners' page links it) → the same thumb clicked again,
    which deletes the feedback row. The question must leave the queue and the KPIs must stop counting it."""
    from test_ui_app import REQ, FakeAssistant, like

    from bpo_assistant.owners.kpi import daily
    from bpo_assistant.owners.qlog import link_feedback
    from bpo_assistant.ui.chat import ChatService

    settings = make_settings(tmp_path / "data")
    store = FeedbackStore(settings)
    if others:
        store.add(question="請負契約とは？", answer="…", rating=1, lang="ja")
    svc = ChatService(FakeAssistant(), store)
    text, records = list(svc.respond_ui("BPOとは何ですか？", [], {}))[-1]
    log_events(settings, [("BPOとは何ですか？", "extractive", False, 0.95, 1)])  # the log row of that answer
    chat = [{"role": "user", "content": [{"type": "text", "text": "BPOとは何ですか？"}]},
            {"role": "assistant", "content": [{"type": "text", "text": text}]}]
    rows, *_ = svc.on_like(chat, records, {}, like(1, False), REQ)
    assert [(i.question, i.why) for i in items(settings)] == [("BPOとは何ですか？", "disliked")]
    assert (daily(settings)[-1].rated, daily(settings)[-1].disliked) == (1, 1)
    svc.on_like(chat, records, rows, like(1, None), REQ)  # withdrawn: the feedback row is deleted
    assert items(settings) == []
    assert (daily(settings)[-1].rated, daily(settings)[-1].disliked) == (0, 0)
    assert link_feedback(settings) == 0  # nothing left to change
