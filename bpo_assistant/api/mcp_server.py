"""`bpo-assistant mcp`: the assistant as an MCP server on stdio (the official `mcp` SDK), for agents.

Tools: `ask` (a cited answer, the JSON `ask --json` prints), `search` (ranked kb passages with their section
and scores, for an agent that composes its own answer) and `topics` (the values `topic` accepts). The index
is checked and loaded before the first message is read, so every tool call answers at query speed.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from bpo_assistant.settings import Settings

INSTRUCTIONS = ("Answers questions about business process outsourcing (BPO) from a vetted, bilingual (ja/en) "
                "knowledge base, quoting its sentences with [n] citations; refuses what the kb does not cover.")


def build_server(assistant, settings: Settings):
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name="bpo-assistant", instructions=INSTRUCTIONS, log_level="WARNING")

    def check(text: str, what: str) -> str:
        if not text.strip():
            raise ToolError(f"{what} is empty")
        if len(text) > settings.max_question_chars:
            raise ToolError(f"{what} longer than {settings.max_question_chars} characters")
        return text

    @server.tool()
    def ask(question: str, topic: str | None = None, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """Answer a question (Japanese or English) from the BPO knowledge base, with [n] citations.

        `topic` limits the sources to one kb topic (see the `topics` tool); `history` is the earlier turns as
        [{"role": "user"|"assistant", "content": "..."}] so follow-ups like 「その中で…」 resolve. The result is
        the answer text with `citations` (document, section, quoted text), `refused` and its `reason`."""
        turns = [{"role": t.get("role", ""), "content": t.get("content", "")} for t in history or ()
                 if t.get("role") in ("user", "assistant")]
        try:
            return assistant.ask(check(question, "question"), turns[-50:], topic or None, channel="mcp").to_json()
        except ValueError as exc:  # an unknown topic names the known ones
            raise ToolError(str(exc)) from None

    @server.tool()
    def search(query: str, lang: str | None = None, k: int = 5, topic: str | None = None) -> dict[str, Any]:
        """Search the knowledge base: the top `k` (1-20) passages for `query`, best first, each with its document,
        section, language, topic and scores. `lang` is "ja" or "en" (default: the query's language)."""
        if lang not in (None, "", "ja", "en"):
            raise ToolError("lang must be 'ja' or 'en'")
        kb = assistant.knowledge()
        try:
            topic = kb.check_topic(topic)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        hits = kb.retriever.search(check(query, "query"), lang=lang or None, k=max(1, min(int(k), 20)), topic=topic)
        return {"hits": [{"doc_id": h.chunk.doc_id, "title": h.chunk.title, "section_id": h.chunk.section_id,
                          "section": h.chunk.section_title, "lang": h.chunk.lang, "topic": h.chunk.topic,
                          "text": h.chunk.text, "score": round(h.score, 4), "dense": round(h.dense, 4),
                          "keyword": round(h.keyword, 4)} for h in hits]}

    @server.tool()
    def topics() -> dict[str, list[str]]:
        """The kb topics that `ask` and `search` accept as `topic`."""
        return {"topics": list(assistant.topics())}

    return server


def cli_mcp(settings: Settings) -> int:
    from bpo_assistant.ingest.pipeline import ensure_index

    from bpo_assistant.assistant import Assistant
    from bpo_assistant.extras import MissingExtra, require
    from bpo_assistant.owners.qlog import attach_question_log

    try:  # before the index check, which can take a minute on an empty data dir
        require("mcp.server.mcpserver", "mcp", "bpo-assistant mcp")
    except MissingExtra as exc:
        print(f"mcp: {exc}", file=sys.stderr)
        return 2
    # stdout is the protocol channel: anything the index check or the model load prints goes to stderr.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            ensure_index(settings)
            assistant = Assistant.from_settings(settings)
            attach_question_log(assistant, settings, channel="mcp")
            server = build_server(assistant, settings)
    except Exception as exc:  # noqa: BLE001 - one line for the MCP client's log, not a traceback
        print(f"mcp: cannot load the index: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        server.run("stdio")
    except KeyboardInterrupt:
        return 130
    return 0
