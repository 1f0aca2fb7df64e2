"""The chat's handlers and the app's wiring, with a small fake assistant (no index, no browser)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from bpo_assistant.settings import OFFLINE_ENV
from bpo_assistant.feedback import FeedbackStore
from bpo_assistant.guard import REFUSAL_EN, REFUSAL_JA
from bpo_assistant.text import detect_lang
from bpo_assistant.types import Answer, Citation, Section, SourceDoc
from conftest import free_port, make_settings

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

gr = pytest.importorskip("gradio")

from bpo_assistant.ui.chat import ChatService  # noqa: E402
from bpo_assistant.ui.safe_chatbot import SafeChatbot  # noqa: E402

SECTION = "BPOは、ノンコア業務を社外の専門業者に任せる経営手法です。BPOの対象には経理や人事があります。"
CITE = Citation(1, "bpo-overview", "BPOとは", "BPOの定義", "definition", "ja", "BPOは、ノンコア業務を社外の専門業者に任せる経営手法です。")


@dataclass
class Cur:
    id: str
    lang: str
    topic: str
    questions: list
    answer: str
    citations: list = field(default_factory=lambda: [CITE])
    stale: bool = False


# The fake's question bank for suggest(): questions that contain the typed text (no splitting on spaces).
BANK = (
    "BPOとは何ですか？",
    "BPOって何の略ですか？",
    "BPOのメリットは？",
    "BPOとITOの違いは？",
    "BPOの対象業務は？",
    "BPOのデメリットは？",
    "BPOの費用相場は？",
    "請負契約と準委任契約の違いは？",
    "What is BPO?",
)
LOW_CONFIDENCE = ("BPOの対象業務は？", "BPOとITOの違いは？", "BPOのメリットは？")


class FakeAssistant:
    """Same shape as bpo_assistant.assistant.Assistant for what the UI uses."""

    def __init__(self):
        self.calls = []
        self.suggest_calls = []

    def ask(self, question, history=(), topic=None):
        self.calls.append((question, list(history)))
        lang = detect_lang(question)
        if "天気" in question or "weather" in question:
            return Answer(REFUSAL_JA if lang == "ja" else REFUSAL_EN, refused=True, lang=lang, kind="refusal",
                          suggestions=("BPOとは何ですか？", "BPOのメリットは？"))
        if "たぶん" in question:  # answered, with low confidence: the nearest routed questions come along
            return Answer("BPOの対象は経理や人事です[1]。", citations=(CITE,), standalone_query=question, lang=lang,
                          suggestions=LOW_CONFIDENCE)
        query = question if not history else f"{history[0]['content']} {question}"
        return Answer("BPOはノンコア業務を社外に任せる経営手法です[1]。対象は経理や人事です[1]。", citations=(CITE,),
                      standalone_query=query, lang=lang, curated="確認" in question)

    def curated_answers(self):
        return [Cur("ov", "ja", "overview", ["BPOとは何ですか？"], "BPOはノンコア業務を任せます[1]。"),
                Cur("ct", "ja", "contracts", ["請負契約とは？"], "成果物に責任を負います[1]。", stale=True)]

    def comparison_markdown(self, lang):
        return "| | BPO | ITO |\n|---|---|---|\n| 対象 | 業務プロセス [1] | IT機能 [2] |"

    def documents(self, lang):
        return [SourceDoc("bpo-overview", "BPOとは", lang, "overview", "p", (Section("definition", "BPOの定義", SECTION),))]

    def section_text(self, lang, doc_id, section_id):
        return SECTION if doc_id == "bpo-overview" else ""

    def suggest(self, text, lang=None, k=5):
        self.suggest_calls.append((text, lang, k))
        text = (text or "").strip()
        if len(text) < 2:
            return []
        return [q for q in BANK if text.casefold() in q.casefold()][:k]


@pytest.fixture
def store(tmp_path):
    return FeedbackStore(path=tmp_path / "feedback.sqlite")


def like(index, liked):
    return gr.LikeData(None, {"index": index, "value": "", "liked": liked})


REQ = SimpleNamespace(session_hash="sess-1")


def test_respond_streams_and_ends_with_sources():
    svc = ChatService(FakeAssistant())
    steps = list(svc.respond("BPOとは何ですか？", []))
    assert len(steps) >= 2 and all(isinstance(s, str) for s in steps)
    assert "[1]" in steps[-1] and "<details" in steps[-1] and "<mark>" in steps[-1]


def test_respond_passes_plain_history():
    fake = FakeAssistant()
    svc = ChatService(fake)
    rendered = list(svc.respond("BPOとは何ですか？", []))[-1]
    hist = [{"role": "user", "content": [{"type": "text", "text": "BPOとは何ですか？"}]},
            {"role": "assistant", "content": [{"type": "text", "text": rendered}]}]
    final = list(svc.respond("メリットは？", hist))[-1]
    assert fake.calls[-1][1] == [{"role": "user", "content": "BPOとは何ですか？"},
                                 {"role": "assistant", "content": fake.ask("x").text}]
    assert "検索クエリ" in final


def test_refusal_offers_suggestions_as_options():
    svc = ChatService(FakeAssistant())
    final = list(svc.respond("今日の天気は？", []))[-1]
    assert isinstance(final, dict) and final["content"].startswith(REFUSAL_JA)
    assert [o["value"] for o in final["options"]] == ["BPOとは何ですか？", "BPOのメリットは？"]


def test_low_confidence_answer_offers_suggestions_as_options():
    svc = ChatService(FakeAssistant())
    final = list(svc.respond("たぶん対象業務は？", []))[-1]
    assert isinstance(final, dict) and "[1]" in final["content"] and "<details" in final["content"]
    assert [o["value"] for o in final["options"]] == list(LOW_CONFIDENCE)
    assert [o["label"] for o in final["options"]] == list(LOW_CONFIDENCE)
    # respond_ui (what the chat runs) ends the same way, and the answer is recorded as not refused
    *_, (text, records) = svc.respond_ui("たぶん対象業務は？", [], {})
    assert [o["value"] for o in text["options"]] == list(LOW_CONFIDENCE) and records[1]["refused"] is False
    # an answer without suggestions stays a plain string
    assert isinstance(list(svc.respond("BPOとは何ですか？", []))[-1], str)


def test_options_are_capped_and_skip_blanks():
    class Many(FakeAssistant):
        def ask(self, question, history=(), topic=None):
            return Answer("答えです[1]。", citations=(CITE,), suggestions=("", *[f"質問{i}？" for i in range(9)]))

    final = list(ChatService(Many()).respond("BPOは？", []))[-1]
    assert [o["value"] for o in final["options"]] == [f"質問{i}？" for i in range(5)]  # 6 slots, the blank dropped


# -- 「もしかして」 ------------------------------------------------------------------------------------------------
def test_suggest_short_or_empty_text_gives_nothing():
    fake = FakeAssistant()
    svc = ChatService(fake)
    for text in ("", None, " ", "B", "　Ｂ　", "\n", "業"):
        assert svc.suggest(text) == [], text
    assert fake.suggest_calls == []  # not even asked


def test_suggest_passes_fake_results_through():
    fake = FakeAssistant()
    svc = ChatService(fake)
    assert svc.suggest("BPOって") == ["BPOって何の略ですか？"]
    assert svc.suggest("違いは") == ["BPOとITOの違いは？", "請負契約と準委任契約の違いは？"]  # no space-splitting
    assert svc.suggest("  what is ") == ["What is BPO?"]
    assert svc.suggest("天気") == []
    assert fake.suggest_calls[0] == ("BPOって", None, 5)
    assert svc.suggest("違いは", lang="ja", k=2) and fake.suggest_calls[-1] == ("違いは", "ja", 2)


def test_suggest_caps_at_k():
    fake = FakeAssistant()
    svc = ChatService(fake)
    assert len([q for q in BANK if "BPO" in q]) > 5
    assert svc.suggest("BPO") == [q for q in BANK if "BPO" in q][:5]
    assert svc.suggest("BPO", k=2) == [q for q in BANK if "BPO" in q][:2]
    assert svc.suggest("BPO", k=0) == []

    class Greedy(FakeAssistant):  # a core that ignores k, repeats itself and returns junk
        def suggest(self, text, lang=None, k=5):
            return ["BPOとは？", "BPOとは？", None, "", 3, *[f"BPO質問{i}" for i in range(20)]]

    assert ChatService(Greedy()).suggest("BPO") == ["BPOとは？", "BPO質問0", "BPO質問1", "BPO質問2", "BPO質問3"]


def test_suggest_failure_or_missing_method_gives_nothing(caplog):
    class Broken(FakeAssistant):
        def suggest(self, text, lang=None, k=5):
            raise RuntimeError("index gone")

    class Stringy(FakeAssistant):
        def suggest(self, text, lang=None, k=5):
            return "BPOとは何ですか？"

    class Old(FakeAssistant):  # a core without suggest() yet
        suggest = None

    with caplog.at_level("WARNING", logger="bpo_assistant.ui.chat"):
        assert ChatService(Broken()).suggest("BPOって") == []
        assert ChatService(Stringy()).suggest("BPOって") == []
        old = ChatService(Old())
        assert old.suggest("BPOって") == [] and old.suggest("BPOとは") == []
    assert "assistant.suggest failed" in caplog.text and "index gone" in caplog.text
    assert caplog.text.count("has no suggest()") == 1  # said once, not per keystroke
    assert ChatService(SimpleNamespace()).suggest("BPOって") == []


def test_suggest_ui_updates_row_and_buttons():
    svc = ChatService(FakeAssistant())
    row, *buttons = svc.suggest_ui("違いは")
    assert row["visible"] is True and len(buttons) == 5
    assert [b.get("value") for b in buttons if b["visible"]] == ["BPOとITOの違いは？", "請負契約と準委任契約の違いは？"]
    assert all(b["visible"] is False for b in buttons[2:])
    row, *buttons = svc.suggest_ui("B")
    assert row["visible"] is False and all(b["visible"] is False for b in buttons)


def test_app_wires_suggestions_privately(tmp_path):
    from bpo_assistant.ui.app import build_app

    demo = build_app(FakeAssistant(), make_settings(tmp_path / "data"))
    config = demo.get_config_file()
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    box = next(i for i, e in ids.items() if e == "bpo-input")
    on_change = [d for d in config["dependencies"] if [box, "change"] in [list(x) for x in d["targets"]]]
    assert len(on_change) == 1  # the debounce never settles stale calls: it must stay the box's only .change
    dep = on_change[0]
    assert dep["trigger_mode"] == "always_last" and dep["show_progress"] == "hidden" and "setTimeout" in dep["js"]
    assert dep["api_visibility"] == "private" and dep["queue"] is True
    on_submit = [d for d in config["dependencies"] if [box, "submit"] in [list(x) for x in d["targets"]]]
    assert any(dep["id"] in (d.get("cancels") or []) for d in on_submit)  # sending cancels a lookup in flight
    assert "もしかして:" in str(config)


def test_records_and_feedback_flow(store):
    svc = ChatService(FakeAssistant(), store)
    out = list(svc.respond_ui("BPOとは何ですか？", [], {}))
    text, records = out[-1]
    assert list(records) == [1] and records[1]["citations"][0]["doc_id"] == "bpo-overview"
    chat = [{"role": "user", "content": [{"type": "text", "text": "BPOとは何ですか？"}]},
            {"role": "assistant", "content": [{"type": "text", "text": text}]}]
    rows, pending, panel, *_ = svc.on_like(chat, records, {}, like(1, False), REQ)
    assert pending == rows[1]["id"] and panel["visible"] is True
    row = store.get(pending)
    assert row["rating"] == -1 and row["session"] == "sess-1" and row["question"] == "BPOとは何ですか？"
    pending2, panel = svc.on_reason(pending, "outdated", " 古い ", "ja")
    assert pending2 is None and panel["visible"] is False
    assert store.get(pending)["reason"] == "outdated" and store.get(pending)["comment"] == "古い"
    # 👍 on the same answer updates the same row; clicking again withdraws it
    rows, pending, panel, *_ = svc.on_like(chat, records, rows, like(1, True), REQ)
    assert pending is None and store.get(rows[1]["id"])["rating"] == 1 and len(store.rows()) == 1
    rows, *_ = svc.on_like(chat, records, rows, like(1, None), REQ)
    assert store.rows() == [] and rows == {}


def test_feedback_without_record_uses_visible_chat(store):
    svc = ChatService(FakeAssistant(), store)
    chat = [{"role": "user", "content": [{"type": "text", "text": "請負契約とは？"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "成果物です。"}]}]
    rows, pending, *_ = svc.on_like(chat, {}, {}, like(1, False), REQ)
    row = store.get(pending)
    assert row["question"] == "請負契約とは？" and row["answer"] == "成果物です。"
    # a different answer at the same index (chat cleared) gets a new row
    chat[1]["content"][0]["text"] = "別の回答です。"
    rows2, pending2, *_ = svc.on_like(chat, {}, rows, like(1, False), REQ)
    assert pending2 != pending and len(store.rows()) == 2


def test_reason_is_required():
    svc = ChatService(FakeAssistant(), None)
    assert svc.on_reason(None, None, None, "ja")[0] is None


def test_safe_chatbot_round_trip():
    bot = SafeChatbot(render=False)
    xss = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2> &amp;"
    data = bot.postprocess([{"role": "user", "content": xss}, {"role": "assistant", "content": "<b>ok</b>"}])
    user_text = data.root[0].content[0].text
    assert "<" not in user_text and "&#60;script&#62;" in user_text
    assert data.root[1].content[0].text == "<b>ok</b>"  # assistant text is rendered (and escaped) by render.py
    back = bot.preprocess(data)
    assert back[0]["content"][0]["text"] == xss
    assert bot.get_block_name() == "chatbot"


def test_app_serves_chat_api(tmp_path):
    from gradio_client import Client

    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app

    settings = make_settings(tmp_path / "data")
    demo = build_app(FakeAssistant(), settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_kwargs(settings))
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=False, analytics_enabled=False)
        assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/chat"}
        first = client.predict("BPOとは何ですか？", api_name="/chat")
        assert "[1]" in str(first) and "bpo-sources" in str(first)
        second = client.predict("メリットは？", api_name="/chat")
        assert "検索クエリ" in str(second)  # the session kept its history
        refusal = client.predict("今日の天気は？", api_name="/chat")
        assert REFUSAL_JA in str(refusal)
        client.close()
        # the launched app ran its startup events: the janitor can sweep the queue's per-session leftovers
        assert demo.session_janitor.loop is not None and demo.session_janitor.loop.is_running()
    finally:
        close_app(demo)


def test_serve_refuses_a_bad_auth_file(tmp_path, capsys):
    from bpo_assistant.ui.app import serve

    bad = tmp_path / "users.txt"
    bad.write_text("alice:plaintext\n")
    settings = make_settings(tmp_path / "data", auth_file=bad)
    assert serve(settings, port=free_port()) == 2
    assert "auth file" in capsys.readouterr().err


def test_login_and_no_file_serving(tmp_path):
    import httpx

    from bpo_assistant.feedback import FeedbackStore
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app
    from bpo_assistant.ui.auth import make_async_verifier, make_line, parse_auth_file

    users = tmp_path / "users.txt"
    users.write_text(make_line("alice", "correct horse", iterations=20_000) + "\n")
    settings = make_settings(tmp_path / "data", auth_file=users)
    FeedbackStore(settings).add(question="q", answer="a", rating=1)
    demo = build_app(FakeAssistant(), settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                auth=make_async_verifier(parse_auth_file(users)), **launch_kwargs(settings))
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=20) as http:
            assert http.get("/config").status_code in (401, 403)  # nothing before login
            bad = http.post("/login", data={"username": "alice", "password": "wrong"})
            assert bad.status_code >= 400 and not any(c.startswith("access-token") for c in http.cookies)
            good = http.post("/login", data={"username": "alice", "password": "correct horse"})
            assert good.status_code == 200 and good.json() == {"success": True}
            assert http.get("/config").status_code == 200
            db = settings.data_dir / "feedback.sqlite"
            for path in (f"/gradio_api/file={db}", f"/file={db}", f"/gradio_api/file={users}"):
                assert http.get(path).status_code in (403, 404), path
    finally:
        close_app(demo)


def test_assistant_failure_becomes_a_message():
    class Broken(FakeAssistant):
        def ask(self, question, history=(), topic=None):
            raise RuntimeError("index gone")

    steps = list(ChatService(Broken()).respond("BPOとは？", []))
    assert steps[-1].startswith("申し訳ありません。回答の作成中にエラー")
    assert list(ChatService(Broken()).respond("What is BPO?", []))[-1].startswith("Sorry, something went wrong")


def test_a_followup_carries_the_last_answers_sections_to_the_assistant():
    fake = FakeAssistant()
    svc = ChatService(fake)
    text, records = list(svc.respond_ui("BPOとは何ですか？", [], {}))[-1]
    text = text["content"] if isinstance(text, dict) else text
    assert records[1]["sections"] == ["bpo-overview#definition"]
    chat = [{"role": "user", "content": [{"type": "text", "text": "BPOとは何ですか？"}]},
            {"role": "assistant", "content": [{"type": "text", "text": text}]}]
    list(svc.respond_ui("その中で対象業務について詳しく", chat, records))
    last_turn = fake.calls[-1][1][-1]
    assert last_turn["role"] == "assistant" and last_turn["sections"] == ["bpo-overview#definition"]
    # an edited chat (the shown answer is no longer the recorded one) sends no stale structure
    chat[1] = {"role": "assistant", "content": [{"type": "text", "text": "別の回答です。"}]}
    list(svc.respond_ui("その中で対象業務について詳しく", chat, records))
    assert "sections" not in fake.calls[-1][1][-1]


class ObservedAssistant(FakeAssistant):
    """The fake with the real Assistant's observer seam, so build_app attaches the real question log to it."""

    def __init__(self):
        super().__init__()
        self.observers = []

    def ask(self, question, history=(), topic=None, *, channel="", user=None):
        from bpo_assistant.types import AnswerEvent

        answer = super().ask(question, history, topic)
        for observer in self.observers:
            observer(AnswerEvent(question, answer.lang, topic, answer, (), 1.0, "g", channel, user))
        return answer


def _logged(settings) -> list:
    from sqlalchemy import select

    from bpo_assistant.owners.db import engine_for, questions

    with engine_for(settings).connect() as conn:
        return conn.execute(select(questions.c.question, questions.c.user, questions.c.channel)).all()


def _flush_log(fake) -> None:
    from bpo_assistant.owners.qlog import QuestionLog

    (qlog,) = [o for o in fake.observers if isinstance(o, QuestionLog)]
    qlog.flush()


@pytest.mark.parametrize("login", [True, False])
def test_the_question_log_records_who_asked_only_with_a_login(tmp_path, login):
    """Through Gradio's own request injection (ChatInterface → respond_ui's gr.Request), signed in or not."""
    from gradio_client import Client

    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.auth import make_async_verifier, make_line, parse_auth_file
    from bpo_assistant.ui.serving import close_app

    users = tmp_path / "users.txt"
    users.write_text(make_line("alice", "correct horse", iterations=20_000) + "\n")
    settings = make_settings(tmp_path / "data", auth_file=users if login else None)
    fake = ObservedAssistant()
    demo = build_app(fake, settings)
    port = free_port()
    auth = dict(auth=make_async_verifier(parse_auth_file(users))) if login else {}
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **auth,
                **launch_kwargs(settings))
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=False, analytics_enabled=False,
                        auth=("alice", "correct horse") if login else None)
        assert "[1]" in str(client.predict("BPOとは何ですか？", api_name="/chat"))
        client.close()
    finally:
        close_app(demo)
    _flush_log(fake)
    assert _logged(settings) == [("BPOとは何ですか？", "alice" if login else None, "chat")]


def test_respond_ui_passes_the_request_username_to_ask():
    seen = []

    class Recording(FakeAssistant):
        def ask(self, question, history=(), topic=None, **kw):
            seen.append(kw)
            return super().ask(question, history, topic)

    svc = ChatService(Recording())
    list(svc.respond_ui("BPOとは何ですか？", [], {}, "", SimpleNamespace(username="alice", session_hash="s")))
    list(svc.respond_ui("BPOとは何ですか？", [], {}, "", SimpleNamespace(username=None, session_hash="s")))
    list(svc.respond_ui("BPOとは何ですか？", [], {}))  # called without Gradio (no request at all)
    assert seen == [{"user": "alice"}, {}, {}]
