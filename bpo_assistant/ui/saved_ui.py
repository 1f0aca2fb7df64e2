"""The chat's 「保存した会話 / Saved chats」 panel (BPO_SAVE_HISTORY): the user's past chats, opened and deleted.

A chat is saved after each answer, under the login name (saved.py says why on the server, not in the browser),
together with the records of its answers, so a reopened chat keeps its citations, its 👍/👎 and its download.
The trash icon of the chat starts a new chat; the saved one stays until 削除 / Delete.
"""

from __future__ import annotations

import datetime
import logging

import gradio as gr

from .render import message_text
from .saved import SavedChats

log = logging.getLogger(__name__)

LABELS = {
    "ja": {"panel": "保存した会話", "pick": "会話を選ぶ", "open": "開く", "delete": "削除", "new": "新しい会話",
           "skipped": "{n}件の保存した会話を読み込めませんでした（サーバーのログに記録）。"},
    "en": {"panel": "Saved chats", "pick": "Choose a chat", "open": "Open", "delete": "Delete", "new": "New chat",
           "skipped": "{n} saved chat(s) could not be read (see the server log)."},
}


def user_of(request) -> str | None:
    name = getattr(request, "username", None)
    return name if isinstance(name, str) and name else None


def plain_messages(history, message: str, final) -> list[dict]:
    """The chat as saved: role + text (our rendered answer HTML included, so the sources show again)."""
    out = [{"role": m.get("role"), "content": message_text(m.get("content"))}
           for m in history or () if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    text = message_text(final.get("content")) if isinstance(final, dict) else message_text(final)
    return out + [{"role": "user", "content": message}, {"role": "assistant", "content": text}]


class SavedPanel:
    """Builds the panel inside the chat tab and the wrapper ChatInterface calls instead of respond_ui."""

    def __init__(self, service, store: SavedChats, lang: str) -> None:
        self.service, self.store = service, store
        lab = LABELS[lang]
        self.chat_id = gr.State(None)
        # Bumped by every save: its .change refreshes the list. A State, not the list itself, as the answer's
        # extra output, because ChatInterface returns every extra output that is a component from the /chat API.
        self.saved_at = gr.State(0.0)
        with gr.Accordion(lab["panel"], open=False, elem_id="bpo-saved") as self.panel:
            with gr.Row(equal_height=True):
                self.pick = gr.Dropdown([], value=None, label=lab["pick"], scale=4, elem_id="bpo-saved-pick")
                self.open_btn = gr.Button(lab["open"], size="sm", scale=0, min_width=0, elem_id="bpo-saved-open")
                self.delete_btn = gr.Button(lab["delete"], size="sm", scale=0, min_width=0, variant="stop",
                                            elem_id="bpo-saved-delete")
                self.new_btn = gr.Button(lab["new"], size="sm", scale=0, min_width=0, elem_id="bpo-saved-new")
            self.note = gr.Markdown("", elem_id="bpo-saved-note")

    # -- the list ------------------------------------------------------------------------------------------
    def choices(self, user: str | None, lang: str = "ja", value: str | None = None):
        listing = self.store.list(user)
        items = [(f"{c.title} ({datetime.datetime.fromtimestamp(c.updated):%Y-%m-%d %H:%M})", c.id)
                 for c in listing.chats]
        ids = {c.id for c in listing.chats}
        note = LABELS[lang]["skipped"].format(n=len(listing.skipped)) if listing.skipped else ""
        return gr.update(choices=items, value=value if value in ids else None), note

    # -- event handlers ------------------------------------------------------------------------------------
    def respond(self, message, history, records, topic=None, chat_id=None, request: gr.Request = None):
        """respond_ui, then the finished chat saved; yields (message, records, chat id, time of the save)."""
        final, recs = None, records
        for final, recs in self.service.respond_ui(message, history, records, topic, request):
            yield final, recs, chat_id, gr.skip()
        if final is None:
            return
        user = user_of(request)
        question = recs.get(len(history or ()) + 1, {}).get("question", "") if isinstance(recs, dict) else ""
        try:
            saved = self.store.save(user, chat_id, plain_messages(history, question or message_text(message), final),
                                    recs)
        except OSError:  # a full or read-only disk: the chat goes on unsaved
            log.exception("saving the chat failed")
            return
        if saved.chat is None:
            log.info("chat not saved: %s", saved.reason)
            return
        yield final, recs, saved.chat.id, saved.chat.updated

    def on_load(self, lang, request: gr.Request):
        update, note = self.choices(user_of(request), _lang(lang))
        return update, note

    def on_saved(self, chat_id, lang, request: gr.Request):
        return self.choices(user_of(request), _lang(lang), value=chat_id)

    def on_open(self, chat_id, request: gr.Request):
        """The chosen chat back on screen with its records; (chatbot, chat state, records, rows, chat id)."""
        chat = self.store.load(user_of(request), chat_id) if chat_id else None
        if chat is None:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        messages = [dict(m) for m in chat.messages]
        return messages, messages, dict(chat.records), {}, chat.id

    def on_delete(self, chat_id, open_id, lang, request: gr.Request):
        """Delete the chosen chat; when it is the one on screen, the screen starts a new chat."""
        user = user_of(request)
        if chat_id:
            self.store.delete(user, chat_id)
        update, note = self.choices(user, _lang(lang))
        if chat_id and chat_id == open_id:
            return update, note, [], [], {}, {}, None
        return update, note, gr.update(), gr.update(), gr.update(), gr.update(), open_id

    def relabel(self, lang_value):
        lab = LABELS[_lang(lang_value)]
        return (gr.Accordion(label=lab["panel"]), gr.update(label=lab["pick"]), gr.update(value=lab["open"]),
                gr.update(value=lab["delete"]), gr.update(value=lab["new"]))

    def wire(self, demo, chat_interface, chatbot, records, rows, ui_lang) -> None:
        ui = dict(api_visibility="private", show_progress="hidden", queue=False)
        state = chat_interface.chatbot_state
        demo.load(self.on_load, [ui_lang], [self.pick, self.note], **ui)
        self.saved_at.change(self.on_saved, [self.chat_id, ui_lang], [self.pick, self.note], **ui)
        self.open_btn.click(self.on_open, [self.pick], [chatbot, state, records, rows, self.chat_id], **ui)
        self.delete_btn.click(self.on_delete, [self.pick, self.chat_id, ui_lang],
                              [self.pick, self.note, chatbot, state, records, rows, self.chat_id], **ui)
        self.new_btn.click(lambda: ([], [], {}, {}, None), None, [chatbot, state, records, rows, self.chat_id],
                           **ui)
        chatbot.clear(lambda: None, None, [self.chat_id], **ui)  # the trash icon: a new chat, the saved one stays
        ui_lang.change(self.relabel, [ui_lang], [self.panel, self.pick, self.open_btn, self.delete_btn,
                                                 self.new_btn], **ui)


def _lang(value) -> str:
    return value if value in LABELS else "ja"
