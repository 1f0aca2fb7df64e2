"""The HTTP API as other tools use it: the real `bpo-assistant chat` server (chat + API in one process, login
and bearer tokens on) over the session's real index, driven by the `openai` client and by plain HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from api_server import PASSWORD, TOKEN, start, write_auth_files
from conftest import free_port

openai = pytest.importorskip("openai")

pytestmark = [pytest.mark.slow, pytest.mark.server]

QUESTION = "請負契約とは？"


@pytest.fixture(scope="module")
def server(real_settings, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api-server")
    users, tokens = write_auth_files(tmp)
    srv = start(real_settings, free_port(), tmp / "server.log", auth_file=users, api_tokens_file=tokens)
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=TOKEN, max_retries=0, timeout=60)


def test_openai_client_gets_a_cited_answer_with_sources(client):
    assert [m.id for m in client.models.list()] == ["bpo-assistant"]
    reply = client.chat.completions.create(model="bpo-assistant", messages=[
        {"role": "system", "content": "You are helpful."}, {"role": "user", "content": QUESTION}])
    text = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop" and "請負" in text
    markers = set(re.findall(r"\[(\d+)\]", text.split("\n\n出典:")[0]))
    sources = reply.model_extra["sources"]
    assert markers and markers <= {str(s["n"]) for s in sources}  # every [n] in the text has its source
    assert "\n\n出典:\n- [1] " in text and text.count("出典:") == 1 and all(s["doc_id"] and s["text"] for s in sources)


def test_openai_client_streams_the_same_answer(client):
    whole = client.chat.completions.create(model="bpo-assistant", messages=[{"role": "user", "content": QUESTION}])
    chunks = list(client.chat.completions.create(model="bpo-assistant", stream=True,
                                                 messages=[{"role": "user", "content": QUESTION}]))
    deltas = [c.choices[0].delta.content or "" for c in chunks]
    assert len([d for d in deltas if d]) > 2  # sentence by sentence, not one blob
    assert "".join(deltas) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["sources"] == whole.model_extra["sources"]


def test_a_followup_through_the_openai_history_resolves_its_subject(client):
    first = client.chat.completions.create(model="bpo-assistant",
                                           messages=[{"role": "user", "content": "BPOとは何ですか？"}])
    second = client.chat.completions.create(model="bpo-assistant", messages=[
        {"role": "user", "content": "BPOとは何ですか？"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "メリットは？"}])
    assert not second.model_extra["bpo"]["refused"] and second.model_extra["sources"]


def test_api_ask_returns_what_ask_json_prints(http):
    from bpo_assistant.types import Answer

    r = http.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(Answer("x").to_json())  # the `bpo-assistant ask --json` object, key for key
    assert "[1]" in body["answer"] and body["citations"] and not body["refused"]
    follow = http.post("/api/ask", json={"question": "メリットは？", "history": [
        {"role": "user", "content": "BPOとは何ですか？"},
        {"role": "assistant", "content": "BPOとは…", "sections": ["bpo-overview#definition"]}]}).json()
    assert follow["standalone_query"] != "メリットは？"  # the history reached the assistant


def test_api_questions_reach_the_question_log_with_channel_and_token_name(http, real_settings):
    import sqlite3
    import time

    question = "API経由の請負契約とは？"
    assert http.post("/api/ask", json={"question": question}).status_code == 200
    db = real_settings.data_dir / "owners.sqlite"
    rows = []
    for _ in range(50):  # the log is written by a background thread
        if db.exists():
            with sqlite3.connect(db) as con:
                rows = con.execute("select channel, user from question_log where question = ?", (question,)).fetchall()
        if rows:
            break
        time.sleep(0.1)
    assert rows == [("api", "alice")]


def test_api_ask_unknown_topic_names_the_known_ones(http):
    r = http.post("/api/ask", json={"question": QUESTION, "topic": "no-such-topic"})
    assert r.status_code == 400 and "known topics" in r.json()["error"]["message"]


def test_malformed_calls_get_a_4xx_with_a_message_and_no_traceback(server, http):
    cases = [
        (http.post("/api/ask", content=b'{"question": ', headers={"content-type": "application/json"}), 400),
        (http.post("/api/ask", json={"history": []}), 422),
        (http.post("/api/ask", json={"question": "BPOとは？", "history": [{"role": "robot", "content": "x"}]}), 422),
        (http.post("/api/ask", json=["not", "an", "object"]), 400),
        (http.post("/api/ask", json={"question": "あ" * 2001}), 422),
        (http.post("/api/ask", content=b"x" * 200_000, headers={"content-type": "application/json"}), 413),
        (http.post("/v1/chat/completions", content=b'{"model": "bpo-assistant", "messages": [{"role": "user", '
                                                   b'"content": "BPO\\ud800"}]}', headers={"content-type": "application/json"}), 422),
        (http.post("/api/ask", content=b'{"question": "BPO\\ud800"}', headers={"content-type": "application/json"}), 422),
        (http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}), 404),
        (http.post("/v1/chat/completions", json={"model": "bpo-assistant", "messages": []}), 422),
        (http.post("/v1/chat/completions", json={"model": "bpo-assistant",
                                                 "messages": [{"role": "assistant", "content": "hi"}]}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        message = response.json()["error"]["message"]
        assert message and "Traceback" not in message and len(message) < 300
    assert "Traceback" not in server.stderr()


def test_api_needs_the_bearer_token_when_auth_is_on(server):
    body = {"question": QUESTION}
    with httpx.Client(base_url=server.base, timeout=30) as anon:
        missing = anon.post("/api/ask", json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert anon.post("/api/ask", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert anon.get("/v1/models").status_code == 401
        # the login password is not an API credential
        assert anon.post("/api/ask", json=body, auth=("alice", PASSWORD)).status_code == 401
        assert anon.get("/healthz").json() == {"status": "ok"}
        ready = anon.get("/readyz").json()
        assert ready["ready"] is True and ready["generation"]
    wrong = openai.OpenAI(base_url=f"{server.base}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="bpo-assistant", messages=[{"role": "user", "content": QUESTION}])


def test_routes_that_need_no_exposure_are_closed(server):
    with httpx.Client(base_url=server.base, timeout=30) as anon:
        for path in ("/openapi.json", "/docs", "/redoc", "/gradio_api/openapi.json", "/gradio_api/info",
                     "/gradio_api/heartbeat/abc", "/gradio_api/queue/data?session_hash=x", "/config"):
            assert anon.get(path).status_code in (401, 403, 404), path
        for path in ("/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/queue/join"):
            assert anon.post(path, json={"event_id": "x", "session_hash": "x"}).status_code in (401, 403), path
        page = anon.get("/")
        assert page.status_code == 200  # the login page and what it loads stay reachable
        for asset in re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page.text)[:5]:
            assert anon.get(f"/{asset}").status_code == 200, asset


def test_the_chat_and_the_api_share_one_server(server):
    from gradio_client import Client

    chat = Client(server.base + "/", auth=("alice", PASSWORD), verbose=False, analytics_enabled=False)
    try:
        shown = str(chat.predict(QUESTION, api_name="/chat"))
    finally:
        chat.close()
    assert "[1]" in shown and "bpo-sources" in shown
    assert "[1]" in httpx.post(f"{server.base}/api/ask", json={"question": QUESTION}, timeout=60,
                               headers={"Authorization": f"Bearer {TOKEN}"}).json()["answer"]


def test_ctrl_c_stops_the_server_with_130(server):
    assert server.stop() == 130
    assert "Traceback" not in server.stderr()
