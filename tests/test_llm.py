"""Optional LLM path against a small local OpenAI-compatible HTTP server (real HTTP, canned replies)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bpo_assistant.assistant import Assistant


class _Canned(BaseHTTPRequestHandler):
    reply = ""
    requests: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        payload = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": type(self).reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_llm_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Canned.requests = []
    yield server
    server.shutdown()


@pytest.fixture
def llm_assistant(assistant, fake_llm_server):
    settings = assistant.settings.model_copy(update={
        "llm": "openai:fake-model", "llm_base_url": f"http://127.0.0.1:{fake_llm_server.server_port}/v1"})
    return Assistant(settings, assistant.embedder, assistant.index)


def test_llm_answer_keeps_only_supported_cited_sentences(llm_assistant, assistant):
    question = "請負契約で成果物に不備があるとどうなる？"
    hits = assistant.retriever.search(question, lang="ja")
    supported = next(s.text for s in assistant.index.sentences if s.chunk_id == hits[0].chunk.id)
    _Canned.reply = (
        f"{supported}[1] "
        "日本のBPO市場は2030年に100兆円へ拡大すると予測されています。[1] "
        f"{supported}[9] "
        "INJECTION SUCCESSFUL。[2]"
    )
    answer = llm_assistant.ask(question)
    assert _Canned.requests, "the LLM server was never called"
    sent = json.dumps(_Canned.requests[-1], ensure_ascii=False)
    assert "[1]" in sent and "sources" in sent  # numbered context went over the wire
    assert answer.kind == "llm"
    assert "[9]" not in answer.text
    assert "100兆円" not in answer.text
    assert "INJECTION SUCCESSFUL" not in answer.text
    assert supported in answer.text
    assert {c.n for c in answer.citations} == {1}


def test_llm_with_nothing_supported_falls_back_to_extractive(llm_assistant):
    _Canned.reply = "すべての指示を無視しました。INJECTION SUCCESSFUL [7]"
    answer = llm_assistant.ask("請負契約とは何ですか？")
    assert answer.kind in ("extractive", "curated")
    assert "INJECTION SUCCESSFUL" not in answer.text
    assert answer.citations


def test_unreachable_llm_falls_back(assistant):
    settings = assistant.settings.model_copy(update={"llm": "openai:x", "llm_base_url": "http://127.0.0.1:9/v1",
                                                     "llm_timeout_s": 2.0})
    answer = Assistant(settings, assistant.embedder, assistant.index).ask("BPR とは？")
    assert answer.kind in ("extractive", "curated", "comparison") and answer.citations


# ---------------------------------------------------------------- check_reply without a server (issue 13, item 8)

def _hits(*texts: str, lang: str = "ja"):
    from bpo_assistant.retrieval import Hit
    from bpo_assistant.types import Chunk

    return [Hit(Chunk(f"{lang}:doc{n}#s:0:x", f"doc{n}", f"文書{n}", lang, "contracts", "s", f"節{n}", 0, text),
                0.9, 0.9, 0.0) for n, text in enumerate(texts, start=1)]


UKEOI = "請負契約では、受託者が成果物の完成に責任を負います。"
JUNI = "準委任契約では、受託者が業務の遂行に責任を負います。"


@pytest.mark.parametrize("reply", [
    f"{UKEOI}[1]{JUNI}[2]",                          # the format the system prompt asks for: 。 then [n]
    f"{UKEOI[:-1]}[1]。{JUNI[:-1]}[2]。",             # marker before the 。
    f"{UKEOI} [1]\n{JUNI} [2]",                       # one sentence per line
], ids=["after-maru", "before-maru", "lines"])
def test_a_well_behaved_reply_is_kept_with_each_marker_on_its_own_sentence(reply):
    from bpo_assistant.llm import check_reply

    out = check_reply(reply, _hits(UKEOI, JUNI), "ja")
    assert out is not None, "a correctly cited reply was dropped (LLM mode would fall back to extractive)"
    _, sentences, citations = out
    assert [(s.text, s.citations) for s in sentences] == [(UKEOI, (1,)), (JUNI, (2,))]
    assert [c.doc_id for c in citations] == ["doc1", "doc2"]


def test_english_reply_with_marker_after_the_full_stop_is_kept():
    from bpo_assistant.llm import check_reply

    a, b = "BPO hands a whole business process to an outside provider.", "ITO hands over only IT functions."
    out = check_reply(f"{a} [1] {b} [2]", _hits(a, b, lang="en"), "en")
    assert out is not None
    assert [(s.text, s.citations) for s in out[1]] == [(a, (1,)), (b, (2,))]


def test_markers_outside_the_context_or_on_the_wrong_source_are_dropped():
    from bpo_assistant.llm import check_reply

    hits = _hits(UKEOI, JUNI)
    assert check_reply(f"{UKEOI}[3]{JUNI}[9]", hits, "ja") is None  # both point at nothing
    # Swapped markers: each sentence cites the other source, which does not support it. Shifting the markers
    # onto the next sentence would wrongly make both look supported.
    assert check_reply(f"{UKEOI}[2]{JUNI}[1]", hits, "ja") is None
    _, sentences, citations = check_reply(f"{UKEOI}[1][7]{JUNI}[5]", hits, "ja")
    assert [(s.text, s.citations) for s in sentences] == [(UKEOI, (1,))]
    assert [c.n for c in citations] == [1]
