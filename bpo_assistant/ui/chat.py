"""The chat's logic: respond(message, history) over `assistant.ask`, per-answer records, 👍/👎 feedback, and the
「もしかして / Did you mean」 suggestions under the message box (over `assistant.suggest`).

Nothing here builds layout; app.py wires these callables to Gradio events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache

import gradio as gr

from bpo_assistant.embeddings import clean_text
from bpo_assistant.text import detect_lang
from bpo_assistant.types import Answer

from .export import write_export
from .labels import lang_of, t
from .render import display_body, history_for_assistant, message_text, plain_answer, stream_answer

log = logging.getLogger(__name__)

# What one browser session holds on the server: the last MAX_RECORDS answers (for 👍/👎 and follow-ups), each
# with at most MAX_RECORD_TURNS turns of the history before it. An older answer's feedback is rebuilt from the
# visible chat (record_for), so the caps bound memory without losing a rating.
MAX_RECORDS = 50
MAX_RECORD_TURNS = 6
MAX_MESSAGE_CHARS = 4000  # the message box's limit; the API gets the same (the box enforces it only in the browser)
SUGGEST_MAX = 5  # suggested questions shown under the message box
SUGGEST_MIN_CHARS = 2  # typed text shorter than this (after stripping) gets no suggestions
MAX_OPTIONS = 6  # suggested questions attached to an answer as clickable options
ERROR_TEXT = {
    "ja": "申し訳ありません。回答の作成中にエラーが発生しました。時間をおいて再度お試しください。",
    "en": "Sorry, something went wrong while preparing the answer. Please try again later.",
}


def shows_record(shown: str, rec: dict) -> bool:
    """The chat message (as plain text) is the recorded answer, in any of the forms the chat renders it."""
    return shown.strip() in (rec["answer"].strip(), display_body(rec["answer"]).strip())


def with_sections(history: Sequence[dict] | None, turns: list[dict], records: dict | None) -> list[dict]:
    """Attach the recorded `sections` of the last assistant message to the last plain turn, when that record still
    belongs to the message shown there (a regenerated or edited chat has no record for it)."""
    history = list(history or [])
    last = next((i for i in range(len(history) - 1, -1, -1)
                 if (history[i].get("role") if isinstance(history[i], dict) else None) == "assistant"), None)
    rec = (records or {}).get(last) if last is not None else None
    if not rec or not rec.get("sections") or not turns or turns[-1].get("role") != "assistant":
        return turns
    if not shows_record(plain_answer(message_text(history[last].get("content"))), rec):
        return turns
    return turns[:-1] + [{**turns[-1], "sections": list(rec["sections"])}]


def validate_chat_call(message, history, records=None, topic=None, *saved) -> list:
    """Gradio validator of the /chat API: a call with a wrong type or an oversized message is refused when it
    joins the queue (HTTP 422 naming the parameter), before it costs an answer. Runs on preprocessed values."""
    text_ok = message is None or isinstance(message, (str, dict))
    size_ok = text_ok and len(message_text(message)) <= MAX_MESSAGE_CHARS
    return [
        gr.validate(size_ok, f"message must be text of at most {MAX_MESSAGE_CHARS} characters"),
        gr.validate(history is None or isinstance(history, list), "history must be a list of messages"),
        gr.validate(records is None or isinstance(records, dict), "records belong to the server"),
        gr.validate(topic is None or isinstance(topic, str), "topic must be text"),
    ] + [  # one result per input: with saved chats on (saved_ui.py) the chat's id comes last
        gr.validate(chat_id is None or isinstance(chat_id, str), "the saved chat id belongs to the server")
        for chat_id in saved
    ]


class ChatService:
    """Holds the assistant and the feedback store; its methods are the chat's event handlers."""

    def __init__(self, assistant, store=None, stream_delay: float = 0.0, serialize: bool = False,
                 stream_steps: int = 4) -> None:
        self.assistant = assistant
        self.stream_steps = stream_steps
        self.store = store
        self.stream_delay = stream_delay
        # Optional global lock around ask(), for assistants whose components are not thread-safe.
        self._lock = threading.Lock() if serialize else None

        @lru_cache(maxsize=512)
        def section(lang: str, doc_id: str, section_id: str) -> str:
            try:
                return self.assistant.section_text(lang, doc_id, section_id) or ""
            except Exception:  # noqa: BLE001 - an unknown section only loses its highlight
                return ""

        self.section = section
        self._no_suggest_logged = False

    # -- answering ---------------------------------------------------------------------------------------------
    def ask(self, message: str, history: Sequence[dict] | None, topic: str | None = None,
            records: dict | None = None, user: str | None = None) -> Answer:
        """assistant.ask on the plain history; a failure becomes a polite message, never a stack trace. With the
        session's `records`, the last answer's cited sections travel with it (follow-ups read the structure).
        `user` is the login name, for the question log (which keeps it only when a login is configured)."""
        # A lone surrogate or a NUL reaches the tokeniser and the feedback database as well as the embedder.
        message = clean_text(message)
        turns = [{**t, "content": clean_text(t["content"])}
                 for t in with_sections(history, history_for_assistant(history), records)]
        # The keyword only when there is a name: stand-in assistants (UI tests, older cores) take no `user`.
        who = {"user": user} if user else {}
        try:
            if self._lock is None:
                return self.assistant.ask(message, turns, topic=topic or None, **who)  # "all" is ""
            with self._lock:
                return self.assistant.ask(message, turns, topic=topic or None, **who)  # "all" is ""
        except Exception:  # noqa: BLE001 - the chat must keep working; details go to the server log
            log.exception("assistant.ask failed")
            lang = detect_lang(message)
            return Answer(ERROR_TEXT[lang], refused=True, lang=lang, kind="error")

    def _final(self, answer: Answer, text: str) -> str | dict:
        """The last rendering; an answer's suggested questions (refusals, low-confidence answers) become the
        chatbot's clickable options, which ChatInterface sends as the next user message."""
        options = [{"value": s, "label": s} for s in (answer.suggestions or ())[:MAX_OPTIONS] if s]
        if options:
            return {"role": "assistant", "content": text, "options": options}
        return text

    def stream(self, message: str, answer: Answer) -> Iterator[str | dict]:
        pieces = list(stream_answer(answer, message, self.section, self.stream_steps))
        for i, piece in enumerate(pieces):
            if i == len(pieces) - 1:
                yield self._final(answer, piece)
            else:
                yield piece
                if self.stream_delay:
                    time.sleep(self.stream_delay)

    def respond(self, message: str, history: Sequence[dict] | None) -> Iterator[str | dict]:
        """The app: answer `message` given the chat `history`, yielding the message as it grows."""
        yield from self.stream(message, self.ask(message, history))

    def respond_ui(self, message: str, history: Sequence[dict] | None, records: dict | None, topic: str | None = None,
                   request: gr.Request = None):
        """respond() plus a record of the answer (for feedback), as ChatInterface's extra output; `topic` is the
        chat's source-topic filter (empty: all).

        Gradio fills `request` because of its annotation (ChatInterface's wrapper keeps this signature); its
        username is the login name with BPO_AUTH_FILE, None without a login.

        The API reaches this with whatever a client sends: anything but text, a list and a dict counts as empty."""
        message = clean_text(message_text(message))[:MAX_MESSAGE_CHARS]
        history = [m for m in history if isinstance(m, dict)] if isinstance(history, (list, tuple)) else []
        records = {k: v for k, v in records.items() if isinstance(k, int) and isinstance(v, dict)} \
            if isinstance(records, dict) else {}
        topic = topic if isinstance(topic, str) else None
        user = getattr(request, "username", None)
        answer = self.ask(message, history, topic, records, user if isinstance(user, str) else None)
        index = len(history) + 1  # the user message goes at len(history), this answer right after it
        records[index] = {
            "question": message,
            "answer": answer.text,
            "citations": [c.to_json() for c in answer.citations],
            "standalone_query": answer.standalone_query,
            "lang": answer.lang,
            "kind": answer.kind,
            "refused": answer.refused,
            "sections": list(getattr(answer, "sections", ()) or ()),
            "history": history_for_assistant(history)[-MAX_RECORD_TURNS:],
        }
        if len(records) > MAX_RECORDS:
            for key in sorted(records)[: len(records) - MAX_RECORDS]:
                records.pop(key, None)
        for piece in self.stream(message, answer):
            yield piece, records

    # -- suggestions (もしかして) ---------------------------------------------------------------------------------
    def suggest(self, text: str | None, lang: str | None = None, k: int = SUGGEST_MAX) -> list[str]:
        """Up to `k` questions near the typed `text` (assistant.suggest); [] for short text or on any failure.

        An assistant without suggest() (older core) simply gets no suggestions; a failure is logged, never shown.
        """
        query = (text or "").strip()
        if len(query) < SUGGEST_MIN_CHARS or k < 1:
            return []
        fn = getattr(self.assistant, "suggest", None)
        if not callable(fn):
            if not self._no_suggest_logged:
                self._no_suggest_logged = True
                log.warning("assistant has no suggest(); the chat shows no suggestions")
            return []
        try:
            if self._lock is None:
                found = fn(query, lang=lang, k=k)
            else:
                with self._lock:
                    found = fn(query, lang=lang, k=k)
            if isinstance(found, str):
                raise TypeError("suggest() returned a string, not a list of questions")
            out: list[str] = []
            for item in found or ():
                q = item.strip() if isinstance(item, str) else ""
                if q and q not in out:
                    out.append(q)
                    if len(out) >= k:
                        break
            return out
        except Exception:  # noqa: BLE001 - suggestions are optional; details go to the server log
            log.exception("assistant.suggest failed")
            return []

    def suggest_ui(self, text: str | None) -> tuple:
        """Updates for the suggestion row and its SUGGEST_MAX buttons: shown with the suggestions, hidden without."""
        found = self.suggest(text)
        buttons = [gr.update(value=found[i], visible=True) if i < len(found) else gr.update(visible=False)
                   for i in range(SUGGEST_MAX)]
        return (gr.update(visible=bool(found)), *buttons)

    # -- feedback ----------------------------------------------------------------------------------------------
    def record_for(self, index: int, chat: list, records: dict | None) -> dict | None:
        """The stored record of the answer at `index`, or one rebuilt from the visible chat."""
        rec = (records or {}).get(index)
        if not isinstance(index, int) or index < 0 or index >= len(chat or []):
            return rec
        msg = chat[index]
        shown = plain_answer(message_text(msg.get("content") if isinstance(msg, dict) else ""))
        if rec is not None and (not shown or shows_record(shown, rec)):
            return rec
        question, prior = "", []
        for j in range(index - 1, -1, -1):
            m = chat[j]
            if isinstance(m, dict) and m.get("role") == "user":
                question = message_text(m.get("content"))
                prior = history_for_assistant(chat[:j])
                break
        if not question and not shown:
            return rec
        return {"question": question, "answer": shown, "citations": [], "standalone_query": "",
                "lang": detect_lang(question or shown), "kind": "", "refused": False, "history": prior}

    def last_answer_record(self, chat: list | None, records: dict | None) -> dict | None:
        """The record of the last assistant message on screen (stored, or rebuilt from the chat)."""
        chat = chat if isinstance(chat, list) else []
        last = next((i for i in range(len(chat) - 1, -1, -1)
                     if isinstance(chat[i], dict) and chat[i].get("role") == "assistant"), None)
        return None if last is None else self.record_for(last, chat, records)

    def download_ui(self, chat: list | None, records: dict | None, ui_lang: str | None):
        """「この回答をMarkdownで保存」: the file for the gr.File under the chat, or a notice when there is no answer."""
        lang = lang_of(ui_lang)
        try:
            export = write_export(self.last_answer_record(chat, records))
        except OSError:  # a full or read-only temp dir: say so, the chat goes on
            log.exception("answer export failed")
            gr.Warning(t(lang, "dl_failed"))
            return gr.update(value=None, visible=False)
        if export.path is None:
            gr.Warning(t(lang, "dl_none"))
            return gr.update(value=None, visible=False)
        return gr.update(value=str(export.path), visible=True)

    def on_like(self, chat: list, records: dict | None, rows: dict | None, data: gr.LikeData,
                request: gr.Request):
        """👍 stores a row; 👎 stores a row and opens the reason panel; clicking again withdraws it.

        Returns (rows, pending row id, reason panel, reason radio, comment box). `rows` maps a message index to
        {"id", "answer"} so a cleared or regenerated chat never updates the row of an earlier answer.
        """
        rows = dict(rows or {})
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        rating = 1 if data.liked is True else -1 if data.liked is False else 0
        keep = (rows, None, gr.update(visible=False), gr.update(), gr.update())
        if self.store is None or not isinstance(index, int):
            return keep
        rec = self.record_for(index, chat, records)
        if rec is None:
            return keep
        known = rows.get(index)
        if known is not None and known.get("answer") != rec["answer"]:
            known = None  # another answer now sits at this index
        try:
            if rating == 0:  # the thumb was clicked again: withdraw
                if known is not None:
                    self.store.delete(known["id"])
                    rows.pop(index, None)
                return keep
            if known is not None and self.store.update(known["id"], rating=rating, reason="", comment=""):
                row_id = known["id"]
            else:
                row_id = self.store.add(
                    question=rec["question"], answer=rec["answer"], rating=rating, citations=rec["citations"],
                    standalone_query=rec["standalone_query"], lang=rec["lang"], history=rec["history"],
                    kind=rec["kind"], refused=rec["refused"], message_index=index,
                    session=getattr(request, "session_hash", "") or "",
                )
                rows[index] = {"id": row_id, "answer": rec["answer"]}
        except Exception:  # noqa: BLE001 - feedback must never break the chat
            log.exception("feedback store failed")
            gr.Warning("feedback could not be saved")
            return keep
        if rating < 0:
            return rows, row_id, gr.update(visible=True), gr.update(value=None), gr.update(value="")
        return (rows, *keep[1:])

    def on_reason(self, pending: int | None, reason: str | None, comment: str | None, ui_lang: str):
        """Save the 👎 reason and comment on the row opened by on_like."""
        ui_lang = lang_of(ui_lang)
        if pending is None or self.store is None:
            return None, gr.update(visible=False)
        if not reason:
            gr.Warning(t(ui_lang, "fb_need_reason"))
            return pending, gr.update(visible=True)
        try:
            self.store.update(int(pending), reason=reason, comment=(comment or "").strip())
        except Exception:  # noqa: BLE001
            log.exception("feedback update failed")
            gr.Warning("feedback could not be saved")
            return pending, gr.update(visible=True)
        gr.Info(t(ui_lang, "fb_thanks"))
        return None, gr.update(visible=False)
