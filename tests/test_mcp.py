"""`bpo-assistant mcp` as an agent uses it: the real server subprocess on stdio, driven by the official SDK's
own stdio client, over the session's real index."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys

import pytest

from api_server import server_env
from bpo_assistant.settings import REPO_ROOT

mcp = pytest.importorskip("mcp")

pytestmark = [pytest.mark.slow, pytest.mark.server]


async def _session_calls(settings) -> dict:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "bpo_assistant.cli", "mcp"],
                                   env=server_env(settings), cwd=str(REPO_ROOT))
    out: dict = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await asyncio.wait_for(session.initialize(), 120)
            out["tools"] = {t.name: t for t in (await session.list_tools()).tools}
            out["topics"] = await session.call_tool("topics", {})
            out["ask"] = await session.call_tool("ask", {"question": "請負契約とは？"})
            out["followup"] = await session.call_tool("ask", {"question": "メリットは？", "history": [
                {"role": "user", "content": "BPOとは何ですか？"}, {"role": "assistant", "content": "BPOとは…"}]})
            out["search"] = await session.call_tool("search", {"query": "準委任契約", "k": 3})
            out["bad_topic"] = await session.call_tool("ask", {"question": "BPOとは？", "topic": "no-such-topic"})
            out["empty"] = await session.call_tool("search", {"query": "  "})
    return out


def test_mcp_server_answers_searches_and_lists_topics(real_settings):
    out = asyncio.run(asyncio.wait_for(_session_calls(real_settings), 240))
    assert set(out["tools"]) == {"ask", "search", "topics"}
    assert "question" in out["tools"]["ask"].input_schema["properties"]

    topics = out["topics"].structured_content["topics"]
    assert "contracts" in topics

    ask = out["ask"]
    assert not ask.is_error
    answer = ask.structured_content
    assert "[1]" in answer["answer"] and answer["citations"] and not answer["refused"]
    assert json.loads(ask.content[0].text)["answer"] == answer["answer"]  # text content for clients without structure
    assert out["followup"].structured_content["standalone_query"] != "メリットは？"

    hits = out["search"].structured_content["hits"]
    assert 1 <= len(hits) <= 3 and hits[0]["score"] >= hits[-1]["score"]
    assert any("準委任" in h["text"] for h in hits) and all(h["doc_id"] and h["section_id"] for h in hits)

    assert out["bad_topic"].is_error and "known topics" in out["bad_topic"].content[0].text
    assert out["empty"].is_error and "empty" in out["empty"].content[0].text

    with sqlite3.connect(real_settings.data_dir / "owners.sqlite") as con:  # written before the server exited
        asked = con.execute("select question from question_log where channel = 'mcp'").fetchall()
    assert ("請負契約とは？",) in asked
