"""Saved chats in the served app (issue 12): off by default; on, a logged-in user's chats are saved after each
answer, listed, reopened with their citations and deleted, and another user on the same browser never sees them."""

from __future__ import annotations

import os

import pytest

from bpo_assistant.settings import OFFLINE_ENV
from conftest import free_port, make_settings

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

gr = pytest.importorskip("gradio")

from test_ui_app import FakeAssistant  # noqa: E402

PASSWORDS = {"alice": "correct horse", "bob": "battery staple"}


class LoginAssistant(FakeAssistant):
    def ask(self, question, history=(), topic=None, user=None):
        return super().ask(question, history, topic)


def _elem_ids(demo) -> set:
    return {getattr(b, "elem_id", None) for b in demo.blocks.values()}


def test_saved_chats_are_off_unless_asked(tmp_path):
    from bpo_assistant.ui.app import build_app

    off = build_app(FakeAssistant(), make_settings(tmp_path / "off"))
    on = build_app(FakeAssistant(), make_settings(tmp_path / "on", save_history=True))
    try:
        assert "bpo-saved-pick" not in _elem_ids(off) and "bpo-saved-pick" in _elem_ids(on)
        # the panel's events are the page's own: /chat stays the only API
        apis = {fn.api_name for fn in on.fns.values() if fn.api_visibility == "public"}
        assert apis == {"chat"}
    finally:
        off.session_janitor.stop()
        on.session_janitor.stop()


@pytest.fixture
def served(tmp_path):
    """The app with a login for alice and bob and BPO_SAVE_HISTORY on, launched on loopback."""
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.auth import make_async_verifier, make_line, parse_auth_file
    from bpo_assistant.ui.serving import close_app

    users = tmp_path / "users.txt"
    users.write_text("".join(make_line(u, p, iterations=20_000) + "\n" for u, p in PASSWORDS.items()))
    users.chmod(0o600)
    settings = make_settings(tmp_path / "data", auth_file=users, save_history=True, log_questions=False)
    demo = build_app(LoginAssistant(), settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                auth=make_async_verifier(parse_auth_file(users)), **launch_kwargs(settings))
    try:
        yield f"http://127.0.0.1:{port}/", settings
    finally:
        close_app(demo)


@pytest.mark.slow
@pytest.mark.server
def test_a_logged_in_users_chat_is_saved_under_their_name_only(served):
    from gradio_client import Client

    from bpo_assistant.ui.saved import SavedChats

    url, settings = served
    client = Client(url, auth=("alice", PASSWORDS["alice"]), verbose=False, ssl_verify=False,
                    analytics_enabled=False)
    try:
        first = client.predict("BPOとは何ですか？", api_name="/chat")
        assert isinstance(first, str) and "[1]" in first  # the /chat API answers as before: the message alone
        client.predict("メリットは？", api_name="/chat")
    finally:
        client.close()
    store = SavedChats(settings.data_path("saved_chats"))
    [chat] = store.list("alice").chats  # one chat, updated after its second answer
    assert chat.title == "BPOとは何ですか？" and len(chat.messages) == 4
    assert chat.records[1]["citations"][0]["doc_id"] == "bpo-overview"  # the citations travel with it
    assert store.list("bob").chats == () and store.list(None).chats == ()


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.browser
def test_a_saved_chat_comes_back_for_its_user_and_not_for_another_on_the_same_browser(served):
    from test_ui_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _require_chromium, ask

    _require_chromium()
    playwright = pytest.importorskip("playwright.sync_api")
    url, _ = served
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP")  # one browser profile
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)

        def login(user: str) -> None:
            context.clear_cookies()
            pg.goto(url)
            pg.fill("input[type=text]", user)
            pg.fill("input[type=password]", PASSWORDS[user])
            pg.keyboard.press("Enter")
            pg.wait_for_selector("#bpo-input textarea")

        def saved_titles() -> list[str]:
            """The saved chats' list, left open."""
            if pg.locator("#bpo-saved-pick").count() == 0 or not pg.locator("#bpo-saved-pick").is_visible():
                pg.locator("#bpo-saved").get_by_text("保存した会話").first.click()
            pg.locator("#bpo-saved-pick input").click()
            pg.wait_for_timeout(500)
            return pg.locator("#bpo-saved-pick li[role=option]").all_inner_texts()

        try:
            login("alice")
            assert "[1]" in ask(pg, "BPOとは何ですか？").inner_text()
            login("bob")  # the same browser, its localStorage untouched: bob sees nothing of alice's
            assert not any("BPOとは" in t for t in saved_titles())
            login("alice")
            titles = saved_titles()
            assert any("BPOとは何ですか？" in t for t in titles), titles
            pg.locator("#bpo-saved-pick li[role=option]").filter(has_text="BPOとは何ですか？").first.click()
            pg.click("#bpo-saved-open")
            answer = pg.locator("#bpo-chatbot [data-testid='bot']").last
            answer.wait_for()
            assert "[1]" in answer.inner_text() and answer.locator("details.bpo-sources").count() == 1
            pg.click("#bpo-saved-delete")
            pg.wait_for_function("() => !document.querySelector(\"#bpo-chatbot [data-testid='bot']\")")
            assert not any("BPOとは" in t for t in saved_titles())
        finally:
            context.close()
            browser.close()
