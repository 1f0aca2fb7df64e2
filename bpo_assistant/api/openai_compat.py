"""OpenAI-compatible chat completions (what Open WebUI, LibreChat, Dify and the `openai` client speak).

The last user message is the question and the earlier user/assistant messages are the history; system
prompts and sampling options are accepted and ignored (answers are quoted from the kb, not sampled). The
message text keeps the `[n]` markers and ends with its 出典/Sources list, because most chat clients show only
the text; the same citations come as structured `sources` beside it (and on the last stream chunk).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

MODEL_ID = "bpo-assistant"
SOURCES_HEAD = {"ja": "出典:", "en": "Sources:"}
# A streamed answer arrives sentence by sentence (the answer is ready at once; this only keeps clients that
# render deltas incremental).
_PIECES = re.compile(r".+?(?:[。．！？!?]+(?: ?\[\d+\])*|\n+|$)", re.S)  # a sentence with the markers after it


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    type: str
    text: str = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | tuple[ContentPart, ...] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content or () if p.type == "text")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # temperature, max_tokens… mean nothing here
    model: str
    messages: tuple[Message, ...] = Field(min_length=1, max_length=100)
    stream: bool = False
    topic: str | None = None  # an extension: extra_body={"topic": "contracts"}


def with_sources(answer) -> str:
    """The answer text with its sources list (the composers already end it with one; added when missing)."""
    text = f"({answer.notice})\n\n{answer.text}" if answer.notice else answer.text
    head = SOURCES_HEAD.get(answer.lang, SOURCES_HEAD["en"])
    if not answer.citations or f"\n{head}\n" in text:
        return text
    lines = "\n".join(f"- {c.label}" for c in answer.citations)
    return f"{text}\n\n{head}\n{lines}"


def without_sources(text: str) -> str:
    """An earlier answer as history: the sources list would only add noise to the follow-up rewrite."""
    for head in SOURCES_HEAD.values():
        text = text.split(f"\n\n{head}\n", 1)[0]
    return text


def split_messages(messages: tuple[Message, ...]) -> tuple[str, list[dict]]:
    if messages[-1].role != "user" or not messages[-1].text.strip():
        raise HTTPException(422, "messages: the last message must be the user's question")
    history = [{"role": m.role, "content": without_sources(m.text) if m.role == "assistant" else m.text}
               for m in messages[:-1] if m.role in ("user", "assistant") and m.text.strip()]
    return messages[-1].text, history[-50:]


def _extras(answer) -> dict:
    return {"sources": [c.to_json() for c in answer.citations],
            "bpo": {"kind": answer.kind, "refused": answer.refused, "curated": answer.curated, "lang": answer.lang,
                    "notice": answer.notice, "sections": list(answer.sections)}}


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def router(api) -> APIRouter:
    r = APIRouter(prefix="/v1")
    caller = Depends(api.caller)

    @r.get("/models")
    def models(user: str | None = caller) -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local"}]}

    @r.post("/chat/completions")
    async def chat_completions(body: ChatRequest, user: str | None = caller):
        if body.model != MODEL_ID:
            raise HTTPException(404, f"model {body.model!r} not found; this server serves {MODEL_ID!r}")
        question, history = split_messages(body.messages)
        api.check_question(question, None, history)
        answer = await api.ask(question, history, body.topic, user)
        content = with_sources(answer)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": MODEL_ID}
        if not body.stream:
            return {**head, "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop", "logprobs": None}], **_extras(answer)}

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {**head, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        def events():
            yield _sse(chunk({"role": "assistant", "content": ""}))
            for piece in _PIECES.findall(content):
                yield _sse(chunk({"content": piece}))
            yield _sse({**chunk({}, "stop"), **_extras(answer)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r
