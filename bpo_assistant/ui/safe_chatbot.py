"""SafeChatbot: a gr.Chatbot that shows user messages exactly as typed.

Its own small module because Gradio writes a `.pyi` stub next to the module of every Component subclass
(a copy of the module's source); kept here, that stub stays a few lines long.
"""

from __future__ import annotations

import gradio as gr

from bpo_assistant.embeddings import clean_text

from .render import escape_user_text, unescape_user_text


class SafeChatbot(gr.Chatbot):
    """gr.Chatbot whose user messages display exactly as typed, as plain text: no HTML, no Markdown, no links.

    User text is escaped on the way to the browser (postprocess) and unescaped on the way back (preprocess);
    the round trip is exact, so the chat function and the history see the original text. Assistant messages
    are rendered by render.py, which already makes kb text inert. A lone surrogate (which no JSON encoder can
    send) becomes U+FFFD in either kind of message.
    """

    is_template = True  # the browser uses the stock Chatbot component

    def postprocess(self, value):
        data = super().postprocess(value)
        for msg in data.root:
            for part in msg.content:
                if getattr(part, "type", "") == "text":
                    text = clean_text(part.text)
                    part.text = escape_user_text(text) if msg.role == "user" else text
        return data

    def preprocess(self, payload):
        messages = super().preprocess(payload)
        for msg in messages:
            if msg.get("role") == "user":
                for part in msg.get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "text":
                        part["text"] = unescape_user_text(part.get("text") or "")
        return messages
