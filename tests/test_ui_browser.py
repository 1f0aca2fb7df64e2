"""The chat in a real browser: Debian's chromium through playwright against the app on a loopback port.

The server runs in-process (build_app(...).launch(prevent_thread_lock=True)) over the session's real index.
Every step saves a screenshot under artifacts/screenshots/. Every request the page makes must stay on
127.0.0.1 (or be data:/blob:). Without /usr/bin/chromium the tests skip, except in CI (CI=true) where they fail.
"""

from __future__ import annotations

import os
import sqlite3
import time
from urllib.parse import urlparse

import pytest

from bpo_assistant.guard import REFUSAL_JA
from bpo_assistant.settings import OFFLINE_ENV
from conftest import free_port

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_MS = 30_000


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing (CI=true: browser tests must run)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk)")


@pytest.fixture(scope="module")
def shots(artifacts_dir):
    path = artifacts_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server(real_settings, assistant):
    _require_chromium()
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app

    demo = build_app(assistant, real_settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_kwargs(real_settings))
    yield f"http://127.0.0.1:{port}/"
    close_app(demo)


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("playwright is not installed (CI=true: browser tests must run)")
        pytest.skip("playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    """The app over test_ui_app's fake assistant, for answers the real kb does not reliably produce."""
    _require_chromium()
    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app
    from conftest import make_settings
    from test_ui_app import FakeAssistant

    settings = make_settings(tmp_path_factory.mktemp("fake-ui"))
    demo = build_app(FakeAssistant(), settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_kwargs(settings))
    yield f"http://127.0.0.1:{port}/"
    close_app(demo)


def _session(browser, url: str):
    """A fresh session (new context) on the app at `url`; fails the test if any request leaves the machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP")
    pg = context.new_page()
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url)
    pg.wait_for_selector("#bpo-input textarea")
    yield pg
    context.close()
    outside = [u for u in requests if not _is_local(u)]
    assert not outside, f"requests left 127.0.0.1: {outside}"
    assert requests, "no request was recorded"


@pytest.fixture
def page(browser, server):
    yield from _session(browser, server)


@pytest.fixture
def fake_page(browser, fake_server):
    yield from _session(browser, fake_server)


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob"):
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and (parsed.hostname or "") in LOCAL_HOSTS


def bot_messages(pg):
    return pg.locator("#bpo-chatbot [data-testid='bot']")


def ask(pg, question: str):
    """Send a question and wait until its answer has finished streaming; returns the answer's locator."""
    before = bot_messages(pg).count()
    box = pg.locator("#bpo-input textarea")
    box.fill(question)
    box.press("Enter")
    pg.wait_for_function(
        "n => document.querySelectorAll(\"#bpo-chatbot [data-testid='bot']\").length > n", arg=before,
        timeout=TIMEOUT_MS)
    # ChatInterface disables the textbox while the answer streams and re-enables it at the end
    pg.wait_for_selector("#bpo-input textarea:not([disabled])", timeout=TIMEOUT_MS)
    pg.wait_for_timeout(300)
    return bot_messages(pg).last


def test_japanese_question_shows_cited_answer_and_sources(page, shots):
    page.screenshot(path=str(shots / "00-start.png"), full_page=True)
    answer = ask(page, "BPOとは何ですか？")
    text = answer.inner_text()
    assert "[1]" in text, text
    sources = answer.locator("details.bpo-sources")
    assert sources.count() == 1
    assert "出典" in sources.locator("summary").inner_text()
    sources.locator("summary").click()
    first = sources.locator(".bpo-source").first
    assert first.locator(".bpo-source-title").inner_text().startswith("[1] ")
    assert " › " in first.locator(".bpo-source-title").inner_text()
    assert first.locator("mark").count() >= 1 and first.locator("mark").first.is_visible()
    page.screenshot(path=str(shots / "01-ja-answer-sources.png"), full_page=True)


def test_follow_up_shows_standalone_query(page, shots):
    first = ask(page, "請負契約とは？")
    assert "請負" in first.inner_text()
    answer = ask(page, "じゃあ準委任とはどう違う？")
    query = answer.locator(".bpo-query")
    assert query.count() == 1, answer.inner_text()
    shown = query.inner_text()
    assert shown.startswith("検索クエリ:") and "準委任" in shown and "請負" in shown
    page.screenshot(path=str(shots / "02-follow-up-query.png"), full_page=True)


def test_dislike_with_reason_is_stored(page, shots, real_settings):
    question = "BPOを導入するメリットは？"
    answer = ask(page, question)
    answer_text = answer.inner_text()
    # Gradio translates the thumb's label with the browser locale (ja-JP: よくないね)
    page.locator("#bpo-chatbot button[aria-label='よくないね'], #bpo-chatbot button[aria-label='Dislike']").last.click()
    reason = page.locator("#bpo-fb-reason")
    reason.wait_for(state="visible")
    reason.get_by_text("情報が古い", exact=True).click()
    comment = f"ブラウザテスト {time.time():.0f}"
    page.locator("#bpo-fb-comment textarea").fill(comment)
    page.screenshot(path=str(shots / "03-dislike-reason.png"), full_page=True)
    page.locator("#bpo-fb-send").click()
    reason.wait_for(state="hidden")
    db = real_settings.data_dir / "owners.sqlite"  # feedback shares the owners' database
    row = None
    for _ in range(50):
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT question, rating, reason, comment, answer, citations FROM feedback "
                               "WHERE comment = ?", (comment,)).fetchone()
        if row:
            break
        time.sleep(0.1)
    assert row is not None, "no feedback row"
    assert row[:4] == (question, -1, "outdated", comment)
    assert row[4] and row[4][:10] in answer_text.replace("\n", "")
    page.screenshot(path=str(shots / "04-dislike-saved.png"), full_page=True)


def test_example_question_is_sent_on_click(page, shots):
    before = bot_messages(page).count()
    page.locator("#bpo-chatbot").get_by_text("BPOとITOの違いは？", exact=True).click()
    page.wait_for_function("n => document.querySelectorAll(\"#bpo-chatbot [data-testid='bot']\").length > n",
                           arg=before)
    page.wait_for_selector("#bpo-input textarea:not([disabled])")
    assert bot_messages(page).last.locator("table").count() == 1  # the comparison answer is a table
    page.screenshot(path=str(shots / "05-example-comparison.png"), full_page=True)


def test_refusal_offers_clickable_suggestions(page, shots, assistant):
    refusal = ask(page, "今日の天気は？")
    assert REFUSAL_JA in refusal.inner_text()
    suggestions = assistant.ask("今日の天気は？", []).suggestions
    options = page.locator("#bpo-chatbot .options button.option")
    assert options.count() == len(suggestions[:6])
    page.screenshot(path=str(shots / "06-refusal-suggestions.png"), full_page=True)
    if suggestions:  # a suggestion is sent as the next question
        n = bot_messages(page).count()
        options.first.click()
        page.wait_for_function("n => document.querySelectorAll(\"#bpo-chatbot [data-testid='bot']\").length > n",
                               arg=n)
        page.wait_for_selector("#bpo-input textarea:not([disabled])")
        assert page.locator("#bpo-chatbot [data-testid='user']").last.inner_text().strip() == suggestions[0]


SUGGEST_BUTTONS = "#bpo-suggest button.bpo-suggest-q"


def _shown_suggestions(pg) -> list[str]:
    return [x.strip() for x in pg.locator(SUGGEST_BUTTONS).all_inner_texts()]


def test_typing_shows_suggestions_and_clicking_one_asks_it(page, shots, assistant):
    box = page.locator("#bpo-input textarea")
    suggest = page.locator("#bpo-suggest")
    assert not suggest.is_visible()
    sent: list[str] = []  # requests carrying the typed text: the debounced lookups
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and "BPO" in (r.post_data or "") else None)
    box.click()
    box.press_sequentially("BPOって", delay=60)  # a typing burst: keystrokes well inside the 300 ms debounce
    suggest.wait_for(state="visible")
    page.wait_for_selector(SUGGEST_BUTTONS)
    assert suggest.locator(".bpo-suggest-title").inner_text().strip() == "もしかして:"
    expected = assistant.suggest("BPOって")
    assert expected, "the kb suggests nothing for 「BPOって」"
    shown = _shown_suggestions(page)
    assert shown == expected[:5], shown
    assert 1 <= len(sent) <= 2, sent  # one lookup per burst (two if the machine stalled mid-burst), not per key
    page.screenshot(path=str(shots / "10-suggestions.png"), full_page=True)

    # an emptied or one-character box hides them
    box.fill("")
    suggest.wait_for(state="hidden")
    box.press_sequentially("B", delay=60)
    page.wait_for_timeout(800)
    assert not suggest.is_visible()
    box.fill("BPOって")
    page.wait_for_selector(SUGGEST_BUTTONS)

    # clicking one asks it, exactly as if typed, and the suggestions go away
    question = _shown_suggestions(page)[0]
    before = bot_messages(page).count()
    page.locator(SUGGEST_BUTTONS).first.click()
    page.wait_for_function("n => document.querySelectorAll(\"#bpo-chatbot [data-testid='bot']\").length > n",
                           arg=before)
    page.wait_for_selector("#bpo-input textarea:not([disabled])")
    page.wait_for_timeout(300)
    assert page.locator("#bpo-chatbot [data-testid='user']").last.inner_text().strip() == question
    answer = bot_messages(page).last.inner_text()
    assert "[1]" in answer, answer
    assert box.input_value() == ""
    page.wait_for_timeout(800)  # a lookup still on its way must not bring them back
    assert not suggest.is_visible()
    page.screenshot(path=str(shots / "11-suggestion-asked.png"), full_page=True)


def test_sending_hides_suggestions(page, shots):
    box = page.locator("#bpo-input textarea")
    box.click()
    box.press_sequentially("BPOって", delay=60)
    page.wait_for_selector(SUGGEST_BUTTONS)
    answer = ask(page, "BPOって何？")  # typed, then Enter
    assert answer.inner_text().strip()
    page.wait_for_timeout(800)
    assert not page.locator("#bpo-suggest").is_visible()


def test_low_confidence_answer_options_are_asked_on_click(fake_page, shots):
    from test_ui_app import LOW_CONFIDENCE

    answer = ask(fake_page, "たぶん対象業務は？")
    assert REFUSAL_JA not in answer.inner_text() and "[1]" in answer.inner_text()
    options = fake_page.locator("#bpo-chatbot .options button.option")
    assert [x.strip() for x in options.all_inner_texts()] == list(LOW_CONFIDENCE)
    fake_page.screenshot(path=str(shots / "12-low-confidence-options.png"), full_page=True)
    n = bot_messages(fake_page).count()
    options.first.click()
    fake_page.wait_for_function("n => document.querySelectorAll(\"#bpo-chatbot [data-testid='bot']\").length > n",
                                arg=n)
    fake_page.wait_for_selector("#bpo-input textarea:not([disabled])")
    fake_page.wait_for_timeout(300)
    assert fake_page.locator("#bpo-chatbot [data-testid='user']").last.inner_text().strip() == LOW_CONFIDENCE[0]
    assert "[1]" in bot_messages(fake_page).last.inner_text()


def test_suggestion_title_follows_ui_language(fake_page, shots):
    fake_page.locator("#bpo-ui-lang").get_by_text("English").click()
    fake_page.get_by_role("tab", name="Chat").wait_for()
    box = fake_page.locator("#bpo-input textarea")
    box.click()
    box.press_sequentially("what is", delay=60)
    fake_page.wait_for_selector(SUGGEST_BUTTONS)
    assert fake_page.locator("#bpo-suggest .bpo-suggest-title").inner_text().strip() == "Did you mean:"
    assert _shown_suggestions(fake_page) == ["What is BPO?"]
    fake_page.screenshot(path=str(shots / "13-suggestions-en.png"), full_page=True)


def test_xss_payload_is_inert_text(page, shots):
    ask(page, XSS)
    assert page.evaluate("typeof window.__xss") == "undefined"
    user = page.locator("#bpo-chatbot [data-testid='user']").last
    assert XSS in user.inner_text()
    assert page.locator("#bpo-chatbot script").count() == 0
    assert page.locator("#bpo-chatbot img[src='x']").count() == 0
    page.wait_for_timeout(500)
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.screenshot(path=str(shots / "07-xss-inert.png"), full_page=True)


def test_onboarding_tab_shows_curated_answers(page, shots, assistant):
    page.get_by_role("tab", name="オンボーディング").click()
    listing = page.locator("#bpo-onb-list")
    listing.wait_for(state="visible")
    ja = [c for c in assistant.curated_answers() if c.lang == "ja"]
    assert ja, "the kb has no Japanese curated answers"
    cards = listing.locator("details.bpo-card")
    assert cards.count() == len(ja)
    questions = [q.strip() for q in listing.locator(".bpo-card-q").all_inner_texts()]
    assert ja[0].questions[0].strip() in questions, questions[:5]
    card = cards.first
    card.locator("summary").first.click()  # open the first card and read its answer
    assert card.locator(".bpo-verified").count() >= 1
    body = card.inner_text()
    assert "[1]" in body and len(body) > 40, body
    card_sources = card.locator("details.bpo-sources")
    card_sources.locator("summary").click()
    assert card_sources.locator(".bpo-source-title").first.inner_text().startswith("[1] ")
    assert page.locator("#bpo-onb-comparison table").count() >= 1
    page.screenshot(path=str(shots / "08-onboarding.png"), full_page=True)
    # the search box filters the list
    page.locator("#bpo-onb-search textarea, #bpo-onb-search input").first.fill(ja[0].questions[0])
    page.wait_for_function("n => document.querySelectorAll('#bpo-onb-list details.bpo-card').length < n",
                           arg=len(ja))
    assert 1 <= cards.count() < len(ja)
    assert listing.locator("details.bpo-card[open]").count() == cards.count()  # matches open while searching
    page.screenshot(path=str(shots / "08b-onboarding-search.png"), full_page=True)


def test_topic_filter_limits_the_sources(page, shots):
    page.locator("#bpo-topic input").click()
    page.get_by_role("option", name="注意点", exact=True).click()
    page.wait_for_timeout(300)
    answer = ask(page, "導入するとき何に気をつければいい？")
    titles = answer.locator(".bpo-source-title").all_text_contents()  # inside the collapsed block
    assert titles and all("BPO委託時の注意点" in x for x in titles), titles
    page.screenshot(path=str(shots / "08c-topic-filter.png"), full_page=True)
    page.locator("#bpo-topic input").click()
    page.get_by_role("option", name="すべて", exact=True).click()


def test_ui_language_switch_and_knowledge_tab(page, shots):
    page.locator("#bpo-ui-lang").get_by_text("English").click()
    page.get_by_role("tab", name="Knowledge", exact=True).wait_for()
    page.get_by_role("tab", name="Knowledge", exact=True).click()
    view = page.locator("#bpo-kb-view")
    view.locator("h2").first.wait_for()
    assert view.locator("h3").count() >= 1
    assert page.locator("#bpo-kb-status table").count() == 1
    page.screenshot(path=str(shots / "09-knowledge-en.png"), full_page=True)


def test_answer_tools_cited_section_download_and_copy_all(fake_page, shots):
    """Issue 12: a cited [n] opens its section in the Knowledge tab; the answer downloads as Markdown with its
    sources; copy-all copies the whole conversation."""
    from pathlib import Path

    answer = ask(fake_page, "BPOとは何ですか？")
    links = answer.locator("a.bpo-cite")
    assert links.count() == 2 and links.first.inner_text() == "[1]"
    links.first.click()
    target = fake_page.locator("#bpo-kb-target")
    target.wait_for(state="visible")
    assert fake_page.get_by_role("tab", name="ナレッジ", exact=True).get_attribute("aria-selected") == "true"
    assert fake_page.locator("#bpo-kb-doc input").input_value().endswith("(bpo-overview)")
    view = fake_page.locator("#bpo-kb-view").inner_text()
    assert view.index("引用された節") < view.index("BPOの定義") < view.index("ノンコア業務を社外の専門業者に任せる")
    fake_page.wait_for_function("() => { const r = document.getElementById('bpo-kb-target').getBoundingClientRect();"
                                " return r.top >= 0 && r.bottom <= window.innerHeight; }")  # scrolled into view
    assert fake_page.url.split("#")[0] == fake_page.url  # the page did not navigate
    fake_page.screenshot(path=str(shots / "14-cited-section.png"), full_page=True)

    fake_page.get_by_role("tab", name="チャット").click()
    fake_page.locator("#bpo-download").click()
    file_link = fake_page.locator("#bpo-download-file a[download]")
    file_link.wait_for()
    with fake_page.expect_download() as download:
        file_link.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename.endswith(".md")
    assert text.startswith("# 質問\n\nBPOとは何ですか？\n") and "経営手法です[1]。" in text
    assert "## 出典\n\n[1] BPOとは › BPOの定義" in text and "> BPOは、ノンコア業務を社外の専門業者に任せる" in text
    fake_page.screenshot(path=str(shots / "15-download.png"), full_page=True)

    fake_page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    fake_page.locator("#bpo-chatbot button[aria-label='Copy conversation']").click()
    copied = fake_page.evaluate("() => navigator.clipboard.readText()")
    assert "BPOとは何ですか？" in copied and "経営手法です" in copied, copied
