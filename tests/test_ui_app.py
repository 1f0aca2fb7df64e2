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


class FakeAssistant:
    """Same shape as bpo_assistant.assistant.Assistant for what the UI uses."""

    def __init__(self):
        self.calls = []

    def ask(self, question, history=(), topic=None):
        self.calls.append((question, list(history)))
        lang = detect_lang(question)
        if "天気" in question or "weather" in question:
            return Answer(REFUSAL_JA if lang == "ja" else REFUSAL_EN, refused=True, lang=lang, kind="refusal",
                          suggestions=("BPOとは何ですか？", "BPOのメリットは？"))
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
    assert "<" not in user_text and "&lt;script&gt;" in user_text
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
