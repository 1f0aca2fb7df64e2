"""Issue 12, "Gradio features users expect": download an answer as Markdown with its sources, [n] markers that open
the cited section in the Knowledge tab, copy-all (unit level; the page itself: tests/test_ui_browser.py)."""

from __future__ import annotations

import html
import json
import os
import re
from urllib.parse import quote

import pytest

from bpo_assistant.settings import OFFLINE_ENV
from conftest import make_settings

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

gr = pytest.importorskip("gradio")

from bpo_assistant.types import Answer, Citation, Section, SourceDoc  # noqa: E402
from bpo_assistant.ui import cite_links, export, render  # noqa: E402
from bpo_assistant.ui.chat import ChatService  # noqa: E402
from test_ui_app import SECTION, FakeAssistant  # noqa: E402

EN = Citation(2, "ito-doc", "ITO <b>", "Scope", "scope", "en", "ITO covers IT functions.")


def _chat(svc: ChatService, *questions: str):
    """Ask `questions` in one session as the page does; returns (chat as the Chatbot sends it, records)."""
    chat, records = [], {}
    for q in questions:
        text, records = list(svc.respond_ui(q, chat, records))[-1]
        chat = chat + [{"role": "user", "content": [{"type": "text", "text": q}]},
                       {"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return chat, records


# -- (a) download as Markdown -------------------------------------------------------------------------------
def test_the_download_holds_question_answer_markers_and_the_cited_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(export.tempfile, "gettempdir", lambda: str(tmp_path))
    svc = ChatService(FakeAssistant())
    chat, records = _chat(svc, "請負契約とは？", "BPOとは何ですか？")
    update = svc.download_ui(chat, records, "ja")
    assert update["visible"] is True
    text = open(update["value"], encoding="utf-8").read()
    assert "# 質問\n\nBPOとは何ですか？\n" in text and "請負契約とは？" not in text  # the last answer only
    assert "BPOはノンコア業務を社外に任せる経営手法です[1]。対象は経理や人事です[1]。" in text
    assert "bpo-cite" not in text and "<" not in text  # the text, not the page's HTML
    assert "## 出典\n\n[1] BPOとは › BPOの定義\n(`bpo-overview` § `definition`)\n\n> BPOは、ノンコア業務を" in text
    # the same answer twice is one file
    assert svc.download_ui(chat, records, "ja")["value"] == update["value"]
    assert len(list((tmp_path / export.EXPORT_DIR_NAME).iterdir())) == 1


def test_download_of_an_english_answer_with_several_sources():
    record = {"question": "What is ITO?", "answer": "ITO covers IT functions [2]. BPO is wider [1].",
              "citations": [EN.to_json(), Citation(1, "bpo", "BPO", "Def", "def", "en", "Line one\n\nline two").to_json()],
              "lang": "en"}
    md = export.answer_markdown(record)
    assert md.index("[1] BPO › Def") < md.index("[2] ITO <b> › Scope")  # in marker order, text as written
    assert "> Line one\n>\n> line two" in md and md.startswith("# Question\n\nWhat is ITO?")


def test_download_without_an_answer_says_so(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", warnings.append)
    svc = ChatService(FakeAssistant())
    assert svc.download_ui([], {}, "ja") == {"__type__": "update", "value": None, "visible": False}
    assert warnings == ["保存できる回答がまだありません。"]
    assert export.write_export({"question": "q", "answer": "  "}, tmp_path) == export.Export(None, "no answer to save yet")


def test_old_downloads_are_removed_when_a_new_one_is_written(tmp_path):
    old = export.write_export({"question": "q1", "answer": "a1"}, tmp_path).path
    os.utime(old, (0, 0))
    kept = export.write_export({"question": "q2", "answer": "a2"}, tmp_path).path
    assert not old.exists() and kept.exists() and kept.read_text(encoding="utf-8").startswith("# 質問\n\nq2")


def test_download_of_an_answer_the_session_no_longer_holds_comes_from_the_visible_chat(tmp_path, monkeypatch):
    monkeypatch.setattr(export.tempfile, "gettempdir", lambda: str(tmp_path))
    svc = ChatService(FakeAssistant())
    chat, _ = _chat(svc, "BPOとは何ですか？")
    text = open(svc.download_ui(chat, {}, "en")["value"], encoding="utf-8").read()  # records dropped with the session
    assert "BPOとは何ですか？" in text and "経営手法です[1]" in text and "(出典なし)" in text


# -- (b) [n] links into the Knowledge tab --------------------------------------------------------------------
def test_cited_markers_link_to_their_section_and_read_back_as_plain_markers():
    cite = Citation(1, "bpo-overview", "BPOとは", "BPOの定義", "definition", "ja", "BPOは…")
    answer = Answer("BPOは経営手法です[1]。別の話[3]。", citations=(cite,), lang="ja")
    out = render.render_answer(answer, "BPOとは？")
    links = [x for x in out.split("<a ")[1:]]
    assert len(links) == 1 and 'href="#bpo-cite/ja/bpo-overview/definition"' in links[0]
    assert "[3]" in out and out.count('class="bpo-cite"') == 1  # a marker without a citation stays text
    assert render.plain_answer(out) == "BPOは経営手法です[1]。別の話[3]。"


def test_marker_link_attributes_are_escaped():
    evil = Citation(1, 'x" onclick="alert(1)/..', '"><script>', "s", "<s>", "ja", "q")
    link = render.link_markers("a[1]", [evil])
    assert 'onclick="' not in link and "<script>" not in link and "<s>" not in link
    href = re.search(r'href="([^"]*)"', link).group(1)  # a "/" inside an id is quoted: the page reads 3 parts
    assert href == "#bpo-cite/ja/" + quote('x" onclick="alert(1)/..', safe="") + "/" + quote("<s>", safe="")
    assert render.plain_answer(link) == "a[1]"


def test_the_click_target_is_parsed_strictly():
    ok = json.dumps({"lang": "ja", "doc": "bpo-overview", "section": "definition", "at": 1})
    assert cite_links.parse_target(ok) == cite_links.CiteTarget("ja", "bpo-overview", "definition")
    for bad in ("", "bpo-overview", "[1]", json.dumps({"doc": "d"}), json.dumps({"lang": "ja", "doc": "", "section": "s"}),
                json.dumps({"lang": "ja", "doc": "d" * 500, "section": "s"}), None, 3):
        assert cite_links.parse_target(bad) is None, bad


def test_the_knowledge_view_marks_the_cited_section():
    doc = SourceDoc("d", "Doc", "ja", "overview", "p", (Section("a", "同じ", "一つ目"), Section("b", "同じ", "二つ目"),
                                                        Section("c", "三", "三つ目")))
    view = cite_links.render_doc_at(doc, "ja", "b", "ja")
    marker = view.index('id="bpo-kb-target"')
    assert view.index("一つ目") < marker < view.index("### 同じ", view.index("一つ目")) < view.index("二つ目")
    assert "引用された節" in view and view.count("bpo-kb-target") == 2  # id and class, once
    assert cite_links.render_doc_at(doc, "ja", "zz", "ja") == cite_links.render_doc(doc, "ja")


def _dep(config, elem_id, event):
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    comp = next(i for i, e in ids.items() if e == elem_id)
    return [d for d in config["dependencies"] if [comp, event] in [list(x) for x in d["targets"]]]


def test_app_wires_the_answer_tools_privately(tmp_path):
    from bpo_assistant.ui.app import build_app
    from bpo_assistant.ui.serving import launch_kwargs

    demo = build_app(FakeAssistant(), make_settings(tmp_path / "data"))
    try:
        config = demo.get_config_file()
        chatbot = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "bpo-chatbot")
        assert "copy_all" in chatbot["props"]["buttons"] and "copy" in chatbot["props"]["buttons"]  # (c)
        (download,) = _dep(config, "bpo-download", "click")
        (goto,) = _dep(config, "bpo-kb-goto", "change")
        assert download["api_visibility"] == goto["api_visibility"] == "private"
        assert _dep(config, "bpo-kb-doc", "change") == [] and len(_dep(config, "bpo-kb-doc", "input")) == 1
        assert "a.bpo-cite" in launch_kwargs()["js"]
        # the handler behind the hidden box: the Knowledge tab, the document, the marker
        fn = demo.fns[goto["id"]].fn
        tab, doc, view = fn(json.dumps({"lang": "ja", "doc": "bpo-overview", "section": "definition", "at": 1}), "ja")
        assert tab.selected == "knowledge" and doc["value"] == "bpo-overview" and "bpo-kb-target" in view
        assert SECTION in html.unescape(view)
        assert fn(json.dumps({"lang": "ja", "doc": "gone", "section": "x", "at": 1}), "ja") == (
            {"__type__": "update"},) * 3
    finally:
        demo.session_janitor.stop()
