"""The owners' loop in a real browser: a refused question → the ナレッジ管理 queue → "add as expected question" →
re-ingest → the same question answered in the chat from the chosen section; behind a login, a role-user login
never sees the tab that an admin-role login does. Screenshots under
artifacts/screenshots/admin-*.png. Skips without /usr/bin/chromium (fails in CI), like test_ui_browser."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from bpo_assistant.owners.kpi import week_of
from conftest import free_port, make_settings
from test_admin_fixes import _tiny_kb
from test_ui_browser import CHROMIUM_ARGS, CHROMIUM, TIMEOUT_MS, _is_local, _require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

QUESTION = "マイカー通勤の届け出は？"


@pytest.fixture
def loop_server(tmp_path):
    _require_chromium()
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.owners.fixes import reingest
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app

    _tiny_kb(tmp_path / "kb")
    settings = make_settings(tmp_path / "data", tmp_path / "kb")
    reingest(settings)
    demo = build_app(Assistant.from_settings(settings), settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_kwargs(settings))
    yield f"http://127.0.0.1:{port}/", settings
    close_app(demo)


def _ask(pg, text: str) -> str:
    """Send `text` in the chat and return the new bot message's text once the answer is complete."""
    bots = pg.locator("#bpo-chatbot [data-testid='bot']")
    before = bots.count()
    box = pg.locator("#bpo-input textarea")
    box.fill(text)
    box.press("Enter")
    pg.wait_for_function("n => document.querySelectorAll(\"#bpo-chatbot [data-testid='bot']\").length > n", arg=before)
    pg.wait_for_function("() => !document.querySelector('#bpo-input button.stop-button')"
                         " || document.querySelector('#bpo-input button.stop-button').offsetParent === null")
    time.sleep(0.5)
    return bots.last.inner_text()


def test_refused_question_is_fixed_from_the_admin_tab_and_then_answered(loop_server, artifacts_dir):
    from playwright import sync_api

    url, settings = loop_server
    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_context(viewport={"width": 1280, "height": 1400}, locale="ja-JP").new_page()
        pg.set_default_timeout(TIMEOUT_MS * 4)
        requests: list[str] = []
        pg.on("request", lambda r: requests.append(r.url))
        pg.goto(url)
        pg.wait_for_selector("#bpo-input textarea")
        started = time.monotonic()
        first = _ask(pg, QUESTION)
        assert "お答えできません" in first
        pg.get_by_role("tab", name="ナレッジ管理 / Knowledge admin").click()
        pg.locator("#bpo-admin-notice").get_by_text("127.0.0.1").wait_for()  # says why it is shown
        pg.wait_for_function("q => (document.querySelector('#bpo-admin-queue') || {}).textContent?.includes(q)",
                             arg=QUESTION)
        pg.screenshot(path=str(shots / "admin-queue.png"), full_page=True)
        pg.locator("#bpo-admin-pick input").click()
        pg.get_by_role("option").filter(has_text=f"] {QUESTION}").first.click()
        section = pg.locator("#bpo-admin-section label").filter(has_text="parking")
        section.wait_for()
        assert "駐車場の利用は総務部に申請します" in pg.locator("#bpo-admin-section-text").inner_text()
        section.click()
        pg.locator("#bpo-admin-add-question").click()
        result = pg.locator("#bpo-admin-result")
        result.get_by_text("回答 / answered").wait_for()
        assert "office#parking" in result.inner_text()
        pg.screenshot(path=str(shots / "admin-fix.png"), full_page=True)
        pg.locator("#bpo-admin-kpi-plot").scroll_into_view_if_needed()
        week = week_of(time.time())
        for table in ("#bpo-admin-kpi-week", "#bpo-admin-kpi-reasons"):  # this week's row; the refusal's reason
            pg.wait_for_function("([sel, w]) => (document.querySelector(sel) || {}).textContent?.includes(w)",
                                 arg=[table, week])
        pg.locator("#bpo-admin-kpi-reasons").scroll_into_view_if_needed()
        pg.screenshot(path=str(shots / "admin-dashboard.png"), full_page=True)
        pg.get_by_role("tab", name="チャット").first.click()
        second = _ask(pg, QUESTION)
        elapsed = time.monotonic() - started
        pg.screenshot(path=str(shots / "admin-answered.png"), full_page=True)
        browser.close()
    assert "お答えできません" not in second and "駐車場" in second
    assert not [u for u in requests if not _is_local(u)], "the admin tab must not reach beyond 127.0.0.1"
    print(f"refused → answered in the browser: {elapsed:.1f}s")


@pytest.fixture
def login_server(tmp_path):
    """The app behind Gradio's login (a stand-in assistant: only the page's tabs are under test); sato has the
    admin role in the auth file, tanaka an old-style line (role user)."""
    _require_chromium()
    from test_ui_app import ObservedAssistant

    from bpo_assistant.ui import auth
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app

    users = tmp_path / "users.txt"
    users.write_text(auth.make_line("sato", "pw-admin", iterations=20_000, role="admin") + "\n"
                     + auth.make_line("tanaka", "pw-user", iterations=20_000) + "\n")
    settings = make_settings(tmp_path / "data", auth_file=users, admins="")
    fake = ObservedAssistant()
    fake.embedder, fake.knowledge = None, lambda: SimpleNamespace(question_vectors=None)  # an empty queue
    demo = build_app(fake, settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                auth=auth.make_async_verifier(auth.parse_auth_file(users)), **launch_kwargs(settings))
    yield f"http://127.0.0.1:{port}/"
    close_app(demo)


def _sign_in(browser, url: str, user: str, password: str):
    """A signed-in page; its `answered` lists the paths of the non-queued event calls it has had answered."""
    pg = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP").new_page()
    pg.set_default_timeout(TIMEOUT_MS * 2)
    pg.answered = []
    pg.on("response", lambda r: pg.answered.append(r.url) if "/run/predict" in r.url else None)
    pg.goto(url)
    pg.locator("input[type='text']").first.fill(user)
    pg.locator("input[type='password']").fill(password)
    pg.locator("input[type='password']").press("Enter")
    pg.wait_for_selector("#bpo-input textarea")
    return pg


def test_a_non_admin_login_does_not_see_the_admin_tab(login_server, artifacts_dir):
    from playwright import sync_api

    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        admin = _sign_in(browser, login_server, "sato", "pw-admin")
        # The admin sees it once the page's load event has run: the same wait shows the user's page is settled.
        admin.get_by_role("tab", name="ナレッジ管理 / Knowledge admin").click()
        admin.locator("#bpo-admin-notice").get_by_text("sato").wait_for()
        user = _sign_in(browser, login_server, "tanaka", "pw-user")
        user.get_by_role("tab", name="オンボーディング").first.wait_for()  # the other tabs are drawn
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not user.answered and time.monotonic() < deadline:  # the page's load event (the admin gate) answered
            user.wait_for_timeout(100)
        assert user.answered, "the page's load event never ran"
        user.wait_for_timeout(500)  # its update applied
        user.screenshot(path=str(shots / "admin-hidden-for-user.png"), full_page=True)
        assert user.get_by_role("tab", name="ナレッジ管理 / Knowledge admin").count() == 0
        assert not user.locator("#bpo-admin-queue").is_visible()
        assert "ナレッジ管理" not in user.locator("#bpo-tabs").inner_text()
        browser.close()
