"""The Gradio app: Chat, Onboarding and Knowledge tabs around `ChatService.respond` (a thin shell).

`serve(settings, host, port)` is what `bpo-assistant chat` runs: offline environment, index check, Assistant,
launch on loopback (optional login from settings.auth_file). `build_app(assistant, settings)` returns the
gr.Blocks without launching it; `launch_kwargs(settings)` holds the launch options (theme with a local CJK font
stack, no analytics/run history/PWA/MCP/monitoring) so tests and the load benchmark launch it the same way.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from bpo_assistant.logs import configure_logging
from bpo_assistant.settings import Settings, set_offline_env

from .labels import EXAMPLES, t
from .serving import CHAT_CONCURRENCY, SUGGEST_CONCURRENCY, env_int, launch_kwargs, quiet_gradio_queue

__all__ = ["build_app", "launch_kwargs", "serve"]

log = logging.getLogger(__name__)

_HEADER = "<h1>{title}</h1><p>{subtitle}</p>"

# 「もしかして」: the message box's .change event (it fires for typing, IME composition, paste and deletion alike;
# in this Gradio the Textbox's .input fires only on keypress) runs this debounce in the browser before asking the
# server. Each change bumps a page-wide counter and waits SUGGEST_DEBOUNCE_MS; if another change (or a send) came
# meanwhile, this call returns a promise that never settles, so Gradio never sends it: only the last change of a
# burst reaches the server. Short text skips the wait (the server answers "hide" at once). With
# trigger_mode="always_last", a change made while a request is in flight is sent once, after it.
# (A never-settling call blocks only the listeners registered after it on the same event: keep this the only
# listener of the box's .change.)
SUGGEST_DEBOUNCE_MS = 300
SUGGEST_DEBOUNCE_JS = """
async (text) => {
  const t = text == null ? "" : String(text);
  const seq = (window.__bpoSuggestSeq = (window.__bpoSuggestSeq || 0) + 1);
  if (t.trim().length >= %(min)d) await new Promise((r) => setTimeout(r, %(ms)d));
  if (seq !== window.__bpoSuggestSeq) return new Promise(() => {});
  return t;
}
"""
# Sending a message hides the suggestions (frontend-only, no server call of its own) and makes any waiting
# debounce stale; the same submit also cancels a lookup still in flight.
SUGGEST_HIDE_JS = """
() => {
  window.__bpoSuggestSeq = (window.__bpoSuggestSeq || 0) + 1;
  return { __type__: "update", visible: false };
}
"""
# A clicked suggestion is put into the message box (a frontend-only event) and then sent the way a user sends a
# typed message: the box's own send button (Enter in the box when the button is not shown).
SUGGEST_SEND_JS = """
() => {
  const box = document.querySelector("#bpo-input");
  const send = box && box.querySelector("button.submit-button");
  if (send && !send.disabled) { send.click(); return; }
  const area = box && box.querySelector("textarea");
  if (area) area.dispatchEvent(new KeyboardEvent("keypress", { key: "Enter", code: "Enter", bubbles: true, cancelable: true }));
}
"""


def _status(assistant, settings: Settings, lang: str) -> str:
    from .onboarding import render_status, stale_count

    info, error = None, ""
    try:
        from bpo_assistant.ingest.pipeline import status_info  # written by another engineer; may be absent

        info = status_info(settings)
    except Exception as exc:  # noqa: BLE001 - the tab still shows what it can
        error = f"status unavailable: {type(exc).__name__}"
    try:
        stale = stale_count(assistant.curated_answers())
    except Exception:  # noqa: BLE001
        stale = 0
    from bpo_assistant.settings import REPO_ROOT

    # The page is shown to every user: paths under these show relative, any other server path as a file name.
    roots = [str(settings.kb_dir), str(settings.data_dir), str(REPO_ROOT), os.path.expanduser("~")]
    return render_status(info if isinstance(info, dict) else None, stale, lang, error, roots)


def _suggest_title(lang: str) -> str:
    from .render import esc

    return f'<span class="bpo-suggest-title">{esc(t(lang, "suggest"))}</span>'


def _topics(assistant) -> list[str]:
    try:
        return list(assistant.topics())
    except Exception:  # noqa: BLE001 - an assistant without topics gets no filter
        return []


def build_app(assistant, settings: Settings, *, store=None, concurrency_limit: int | None = None,
              stream_delay: float = 0.0) -> Any:
    """The gr.Blocks app. `store` defaults to a FeedbackStore under settings.data_dir."""
    import gradio as gr

    from bpo_assistant.feedback import FeedbackStore

    from .chat import SUGGEST_MAX, SUGGEST_MIN_CHARS, ChatService, validate_chat_call
    from .cite_links import CITE_SCROLL_JS, parse_target, render_doc_at
    from .guarded import GuardedBlocks
    from .safe_chatbot import SafeChatbot
    from .sessions import SessionJanitor
    from .labels import lang_of, reason_choices, topic_choices
    from .onboarding import doc_choices, render_curated, render_doc, section_order
    from .render import md_inert

    store = store if store is not None else FeedbackStore(settings)
    concurrency_limit = concurrency_limit or CHAT_CONCURRENCY
    service = ChatService(assistant, store, stream_delay=stream_delay)

    def curated(lang: str, query: str = "") -> str:
        try:
            items = assistant.curated_answers()
        except Exception:  # noqa: BLE001
            log.exception("curated answers unavailable")
            items = []
        return render_curated(items, lang, query, service.section, section_order(docs(lang)))

    def comparison(lang: str) -> str:
        try:
            return md_inert(assistant.comparison_markdown(lang))
        except Exception:  # noqa: BLE001
            log.exception("comparison table unavailable")
            return ""

    def docs(lang: str) -> list:
        try:
            return list(assistant.documents(lang))
        except Exception:  # noqa: BLE001
            log.exception("documents unavailable")
            return []

    def doc_view(lang: str, doc_id: str | None) -> str:
        return render_doc(next((d for d in docs(lang) if d.id == doc_id), None), lang)

    lang0 = "ja"
    docs0 = doc_choices(docs(lang0))
    first_doc = docs0[0][1] if docs0 else None

    with GuardedBlocks(title=t(lang0, "title"), fill_height=False) as demo:
        with gr.Row(equal_height=True):
            header = gr.HTML(_HEADER.format(title=t(lang0, "title"), subtitle=t(lang0, "subtitle")),
                             elem_id="bpo-header")
            ui_lang = gr.Radio([("日本語", "ja"), ("English", "en")], value=lang0, label=t(lang0, "ui_lang"),
                               scale=0, min_width=220, elem_id="bpo-ui-lang")
        records = gr.State({})
        rows = gr.State({})
        pending = gr.State(None)

        # Written by the page script when a cited [n] is clicked (cite_links.py); in the page, never shown.
        kb_goto = gr.Textbox(visible="hidden", show_label=False, container=False, elem_id="bpo-kb-goto")

        with gr.Tabs(elem_id="bpo-tabs") as tabs:
            with gr.Tab(t(lang0, "tab_chat"), id="chat", elem_id="bpo-tab-chat") as tab_chat:
                # Rendered here (above the chat), so ChatInterface does not tuck it into its "Additional Inputs".
                topics = _topics(assistant)
                topic = gr.Dropdown(topic_choices(topics, lang0), value="", label=t(lang0, "topic_filter"),
                                    visible=bool(topics), elem_id="bpo-topic")
                chatbot = SafeChatbot(
                    label=t(lang0, "chatbot"), height=560, layout="panel", sanitize_html=True,
                    render_markdown=True, latex_delimiters=[], buttons=["copy", "copy_all"], elem_id="bpo-chatbot",
                    feedback_options=("Like", "Dislike"),
                )
                textbox = gr.Textbox(placeholder=t(lang0, "placeholder"), show_label=False, max_lines=6,
                                     max_length=4000, submit_btn=True, stop_btn=True, elem_id="bpo-input")
                saved = None
                if settings.save_history:  # BPO_SAVE_HISTORY: the user's past chats, above this one (saved_ui.py)
                    from .saved import SavedChats
                    from .saved_ui import SavedPanel

                    saved = SavedPanel(service, SavedChats(settings.data_path("saved_chats")), lang0)
                chat_interface = gr.ChatInterface(
                    fn=saved.respond if saved else service.respond_ui,
                    chatbot=chatbot,
                    textbox=textbox,
                    additional_inputs=[records, topic, saved.chat_id] if saved else [records, topic],
                    additional_outputs=[records, saved.chat_id, saved.saved_at] if saved else [records],
                    examples=[[q] for q in EXAMPLES],
                    run_examples_on_click=True,
                    cache_examples=False,
                    api_name="chat",
                    concurrency_limit=concurrency_limit,
                    fill_height=False,
                    autofocus=True,
                    analytics_enabled=False,
                )
                # ChatInterface has no validator for its API event; with one, a malformed call is refused with a 4xx
                # when it joins the queue (GuardedBlocks turns Gradio's own input errors into one line).
                for fn in demo.fns.values():
                    if fn.api_name == "chat":
                        fn.validator = validate_chat_call
                # 「もしかして:」 under the message box: up to SUGGEST_MAX questions near what is being typed.
                with gr.Row(visible=False, elem_id="bpo-suggest") as sg_row:
                    sg_title = gr.HTML(_suggest_title(lang0), elem_id="bpo-suggest-title", scale=0, min_width=0,
                                       container=False, padding=False)
                    sg_buttons = [gr.Button("", size="sm", variant="secondary", visible=False, scale=0, min_width=0,
                                            elem_classes=["bpo-suggest-q"]) for _ in range(SUGGEST_MAX)]
                with gr.Group(visible=False, elem_id="bpo-feedback") as fb_panel:
                    fb_title = gr.Markdown(t(lang0, "fb_title"))
                    fb_reason = gr.Radio(reason_choices(lang0), label=t(lang0, "fb_reason"), elem_id="bpo-fb-reason")
                    fb_comment = gr.Textbox(label=t(lang0, "fb_comment"), lines=2, max_length=2000,
                                            elem_id="bpo-fb-comment")
                    with gr.Row():
                        fb_send = gr.Button(t(lang0, "fb_submit"), variant="primary", elem_id="bpo-fb-send")
                        fb_close = gr.Button(t(lang0, "fb_cancel"), elem_id="bpo-fb-close")
                with gr.Row(elem_id="bpo-download-row"):
                    dl_button = gr.Button(t(lang0, "dl_button"), size="sm", scale=0, min_width=0, elem_id="bpo-download")
                    dl_file = gr.File(label=t(lang0, "dl_file"), visible=False, interactive=False, height=80,
                                      elem_id="bpo-download-file")

            with gr.Tab(t(lang0, "tab_onboarding"), id="onboarding", elem_id="bpo-tab-onboarding") as tab_onb:
                onb_intro = gr.Markdown(t(lang0, "onb_intro"))
                onb_search = gr.Textbox(label=t(lang0, "onb_search"), max_length=200, elem_id="bpo-onb-search")
                onb_list = gr.Markdown(curated(lang0), elem_id="bpo-onb-list")
                onb_cmp_title = gr.Markdown(f"### {t(lang0, 'onb_comparison')}")
                onb_cmp = gr.Markdown(comparison(lang0), elem_id="bpo-onb-comparison")

            with gr.Tab(t(lang0, "tab_knowledge"), id="knowledge", elem_id="bpo-tab-knowledge") as tab_kb:
                kb_doc = gr.Dropdown(docs0, value=first_doc, label=t(lang0, "kb_doc"), elem_id="bpo-kb-doc")
                kb_view = gr.Markdown(doc_view(lang0, first_doc), elem_id="bpo-kb-view")
                kb_status_title = gr.Markdown(f"### {t(lang0, 'kb_status')}")
                kb_status = gr.Markdown(_status(assistant, settings, lang0), elem_id="bpo-kb-status")
                kb_refresh = gr.Button(t(lang0, "kb_refresh"), size="sm")

            from .admin import admin_tab  # ナレッジ管理: hidden unless the visitor is an admin; logs the chat's questions

            admin_tab(demo, assistant, settings)

        # UI-only events: usable by the page, hidden from the API page and from API clients ("/chat" is the API)
        ui = dict(api_visibility="private", show_progress="hidden")
        chatbot.like(service.on_like, [chatbot, records, rows], [rows, pending, fb_panel, fb_reason, fb_comment],
                     queue=False, **ui)
        chatbot.clear(lambda: ({}, {}, None, gr.update(visible=False), gr.update(value=None, visible=False)), None,
                      [records, rows, pending, fb_panel, dl_file], queue=False, **ui)
        if saved is not None:
            saved.wire(demo, chat_interface, chatbot, records, rows, ui_lang)
        dl_button.click(service.download_ui, [chatbot, records, ui_lang], [dl_file], queue=False, **ui)
        fb_send.click(service.on_reason, [pending, fb_reason, fb_comment, ui_lang], [pending, fb_panel], queue=False,
                      **ui)
        fb_close.click(lambda: (None, gr.update(visible=False)), None, [pending, fb_panel], queue=False, **ui)
        suggest_js = SUGGEST_DEBOUNCE_JS % {"min": SUGGEST_MIN_CHARS, "ms": SUGGEST_DEBOUNCE_MS}
        # Queued (not queue=False) so that sending can cancel a request still in flight.
        suggesting = textbox.change(service.suggest_ui, [textbox], [sg_row, *sg_buttons], js=suggest_js,
                                    trigger_mode="always_last", concurrency_limit=SUGGEST_CONCURRENCY,
                                    concurrency_id="suggest", **ui)
        textbox.submit(None, None, [sg_row], js=SUGGEST_HIDE_JS, cancels=[suggesting], queue=False, **ui)
        for button in sg_buttons:
            button.click(None, [button], [textbox], js="(q) => q", queue=False, **ui).then(
                None, None, None, js=SUGGEST_SEND_JS, queue=False, **ui)
        onb_search.change(lambda q, lang: curated(lang_of(lang), q), [onb_search, ui_lang], onb_list,
                          trigger_mode="always_last", **ui)
        # .input (the user's pick), not .change: a cited-section jump sets the document itself, with its marker
        kb_doc.input(lambda d, lang: doc_view(lang_of(lang), d), [kb_doc, ui_lang], kb_view, **ui)

        def goto_section(value: str, lang_value: str):
            """A clicked [n]: the Knowledge tab, its document selected, a marker before the cited section."""
            target = parse_target(value)
            ui_lang_now = lang_of(lang_value)
            lang = target.lang if target is not None and target.lang in ("ja", "en") else ui_lang_now
            found = docs(lang) if target is not None else []
            doc = next((d for d in found if d.id == target.doc_id), None) if target is not None else None
            if doc is None:  # not ours, or the document left the kb since the answer
                return gr.update(), gr.update(), gr.update()
            return (gr.Tabs(selected="knowledge"), gr.update(choices=doc_choices(found), value=doc.id),
                    render_doc_at(doc, lang, target.section_id, ui_lang_now))

        kb_goto.change(goto_section, [kb_goto, ui_lang], [tabs, kb_doc, kb_view], queue=False, **ui).then(
            None, None, None, js=CITE_SCROLL_JS, queue=False, **ui)
        kb_refresh.click(lambda lang: _status(assistant, settings, lang_of(lang)), [ui_lang], kb_status, **ui)

        def switch(lang_value: str, query: str):
            lang = lang_of(lang_value)
            choices = doc_choices(docs(lang))
            first = choices[0][1] if choices else None
            return (
                _HEADER.format(title=t(lang, "title"), subtitle=t(lang, "subtitle")),
                gr.Tab(label=t(lang, "tab_chat")), gr.Tab(label=t(lang, "tab_onboarding")),
                gr.Tab(label=t(lang, "tab_knowledge")),
                gr.update(label=t(lang, "chatbot")), gr.update(placeholder=t(lang, "placeholder")),
                _suggest_title(lang),
                gr.update(choices=topic_choices(topics, lang), label=t(lang, "topic_filter")),
                t(lang, "fb_title"), gr.update(choices=reason_choices(lang), label=t(lang, "fb_reason")),
                gr.update(label=t(lang, "fb_comment")), gr.update(value=t(lang, "fb_submit")),
                gr.update(value=t(lang, "fb_cancel")), gr.update(value=t(lang, "dl_button")),
                gr.update(label=t(lang, "dl_file")),
                t(lang, "onb_intro"), gr.update(label=t(lang, "onb_search")), curated(lang, query),
                f"### {t(lang, 'onb_comparison')}", comparison(lang),
                gr.update(choices=choices, value=first, label=t(lang, "kb_doc")), doc_view(lang, first),
                f"### {t(lang, 'kb_status')}", _status(assistant, settings, lang), gr.update(value=t(lang, "kb_refresh")),
            )

        ui_lang.change(
            switch, [ui_lang, onb_search],
            [header, tab_chat, tab_onb, tab_kb, chatbot, textbox, sg_title, topic, fb_title, fb_reason, fb_comment,
             fb_send, fb_close, dl_button, dl_file, onb_intro, onb_search, onb_list, onb_cmp_title, onb_cmp, kb_doc, kb_view, kb_status_title, kb_status,
             kb_refresh],
            **ui,
        )
    quiet_gradio_queue()
    demo.queue(default_concurrency_limit=4, max_size=512)
    demo.state_session_capacity = settings.chat_max_sessions  # read when the app is created (launch or mount)
    demo.session_janitor = SessionJanitor(demo, settings.chat_session_idle_s, settings.chat_max_sessions).start()
    return demo


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, *,
          allow_unauthenticated: bool = False) -> int:
    """`bpo-assistant chat`: the chat and the HTTP API (bpo_assistant/api/) in one uvicorn process, sharing one
    Assistant, until interrupted. Returns the exit code (130 after Ctrl-C)."""
    from .sessions import limit_malloc_arenas

    limit_malloc_arenas()  # before any worker thread has an arena of its own (sessions.py: why)
    set_offline_env()
    # One OpenMP thread per query embedding: the server gets its parallelism from answering several questions at
    # once (the embedder's C engine releases the GIL), and 2-thread OpenMP regions from concurrent requests would
    # oversubscribe two cores (measured: 19 ms vs 31 ms wall per query). Must be set before the engine loads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    configure_logging(settings)  # login backoffs and API faults must reach the operator's terminal (BPO_LOG_*)
    from .serving import is_loopback, run_server

    auth = None
    if settings.auth_file:
        from .auth import AuthFileError, make_async_verifier
        from .auth_file import AuthFile

        logins = AuthFile(settings.auth_file, settings.auth_min_iterations)
        try:
            for warning in logins.load():
                print(f"auth file: {warning}", file=sys.stderr)
        except (OSError, AuthFileError) as exc:
            print(f"auth file unusable, not starting: {exc}", file=sys.stderr)
            return 2
        auth = make_async_verifier(logins)
    elif not is_loopback(host):
        if not allow_unauthenticated:
            print(f"refusing to serve on {host} without a login: set BPO_AUTH_FILE "
                  "(or pass --allow-unauthenticated to expose the chat to the network)", file=sys.stderr)
            return 2
        print(f"warning: serving on {host} without a login (--allow-unauthenticated)", file=sys.stderr)
    if settings.api_tokens_file:
        from bpo_assistant.api.tokens import TokenFileError, parse_tokens_file

        try:
            parse_tokens_file(settings.api_tokens_file)
        except (OSError, TokenFileError) as exc:
            print(f"API tokens file unusable, not starting: {exc}", file=sys.stderr)
            return 2
    import socket

    try:  # a taken port is one line now, not a traceback after the index has loaded
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        print(f"cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    from .unreachable import wait_for_store

    try:  # before the index check: that reads the store too, and would end in a traceback
        wait_for_store(settings, host, port)
    except KeyboardInterrupt:
        return 130
    from bpo_assistant.ingest.pipeline import ensure_index

    from bpo_assistant.api.http import create_app
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.owners.qlog import attach_question_log

    ensure_index(settings)
    assistant = Assistant.from_settings(settings)
    # One log for the chat and the API: the chat's asks carry no channel (labelled "chat"), the API's say "api".
    attach_question_log(assistant, settings, channel="chat")
    demo = build_app(assistant, settings, concurrency_limit=env_int("BPO_CHAT_CONCURRENCY", CHAT_CONCURRENCY))
    demo.bound_host = host  # the admin tab opens without a login only on a loopback-bound server
    app = create_app(assistant, settings, demo, auth=auth, auth_message=t("ja", "title") if auth else None)
    print(f"BPO assistant on http://{host}:{port} (API: /api/ask, /v1/chat/completions)", file=sys.stderr)
    try:
        run_server(app, host, port, getattr(app.state, "gradio_stop_event", None))
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises the captured SIGINT
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover - `python -m bpo_assistant.ui.app` = `bpo-assistant chat`
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.exit(serve(Settings()))
