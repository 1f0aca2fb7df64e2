"""Pure rendering of the chat UI: sources block, badges, escaping, streaming pieces, onboarding, auth lines."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import pytest

from bpo_assistant.guard import REFUSAL_JA
from bpo_assistant.types import Answer, Citation, Section, SourceDoc
from bpo_assistant.ui import auth, onboarding, render
from bpo_assistant.ui.labels import REASON_CODES, TOPIC_ORDER, reason_choices, topic_rank

XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
SECTION = (
    "BPOは、自社の業務プロセスのうち主にノンコア業務を、社外の専門業者に任せる経営手法です。\n"
    "BPOの主な対象となるノンコア業務には、カスタマーサポート、経理、人事、IT運用などがあります。\n"
    "- BPOの委託先の専門性は、業務品質の向上につながります。"
)
QUOTE = "BPOの主な対象となるノンコア業務には、カスタマーサポート、経理、人事、IT運用などがあります。"


def cite(n=1, title="BPOとは", section="BPOの定義", text=QUOTE, doc="bpo-overview", sid="definition"):
    return Citation(n=n, doc_id=doc, title=title, section=section, section_id=sid, lang="ja", text=text)


def lookup(lang, doc_id, section_id):
    return SECTION if (doc_id, section_id) == ("bpo-overview", "definition") else ""


def answer(**kw) -> Answer:
    base = dict(text="BPOはノンコア業務を社外に任せる経営手法です[1]。対象は経理や人事です[1]。",
                citations=(cite(),), standalone_query="BPOとは何ですか?", lang="ja")
    base.update(kw)
    return Answer(**base)


# -- escaping --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [XSS, "a & b &amp; <b>x</b>", "![x](http://evil.example/p.png)", "[1](javascript:x)",
                                  "> 引用\n| a | b |\n|---|---|\n| 1 | 2 |", "&lt;script&gt;", ""])
def test_md_inert_is_reversible_and_tag_free(text):
    out = render.md_inert(text)
    assert "<" not in out and "![" not in out and "](" not in out
    assert html.unescape(out) == text
    assert html.unescape(render.escape_user_text(text)) == text
    assert "<" not in render.escape_user_text(text)


def test_markdown_tables_and_quotes_survive():
    md = render.md_inert_keep_quotes("> 注意\n\n| 項目 | BPO |\n|---|---|\n| 対象 | 業務プロセス [1] |")
    assert md.startswith("> 注意") and "| 対象 | 業務プロセス [1] |" in md


def test_kb_supplied_html_is_escaped_everywhere():
    evil = cite(title=XSS, section="<b>sec</b>", text=XSS)
    a = answer(text=f"回答です{XSS}[1]。", citations=(evil,), standalone_query=XSS, notice=XSS)
    out = render.render_answer(a, "質問", lookup)
    assert "<script" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out


# -- sources, badges, query --------------------------------------------------------------------------------------
def test_sources_block_lists_and_highlights():
    out = render.render_answer(answer(), "BPOとは何ですか？", lookup)
    assert "[1]" in out.split(render.EXTRA_OPEN)[0]  # markers stay in the answer body
    block = out.split(render.EXTRA_OPEN)[1]
    assert block.count("<details") == 1 and "<summary>出典 (1)</summary>" in block
    assert "[1] BPOとは › BPOの定義" in block
    assert block.count("<mark>") == 1 and f"<mark>{QUOTE}</mark>" in block
    # the rest of the section is shown, unmarked, for context
    assert "業務品質の向上" in block and "• BPOの委託先" in block


def test_quote_not_in_section_is_still_shown():
    out = render.render_sources([cite(text="どこにもない文です。", sid="missing")], "ja", lookup)
    assert "<mark>どこにもない文です。</mark>" in out


def test_lookup_failure_does_not_break():
    def boom(*_):
        raise KeyError("x")

    assert "<mark>" in render.render_sources([cite()], "ja", boom)


def test_no_citations_no_sources_block():
    out = render.render_answer(answer(citations=(), standalone_query=""), "q", lookup)
    assert "<details" not in out and render.EXTRA_OPEN not in out


def test_badges():
    plain = render.render_answer(answer(), "BPOとは何ですか？", lookup)
    assert "bpo-badge" not in plain
    cur = render.render_answer(answer(curated=True, kind="curated"), "BPOとは何ですか？", lookup)
    assert "確認済み" in cur and "bpo-verified" in cur and "bpo-stale" not in cur
    stale = render.render_answer(answer(curated=True, stale=True, notice="出典が変わりました"), "q", lookup)
    assert "bpo-stale" in stale and "出典が変わりました" in stale
    en = render.render_answer(answer(curated=True, lang="en"), "What is BPO?", lookup)
    assert "Verified" in en and "Sources (1)" in en


def test_standalone_query_only_when_different():
    same = render.render_answer(answer(standalone_query="BPOとは何ですか?"), "BPOとは何ですか？", lookup)
    assert "検索クエリ" not in same
    diff = render.render_answer(answer(standalone_query="準委任契約と請負契約の違い"), "じゃあ準委任は？", lookup)
    assert "検索クエリ: <span class=\"bpo-query-text\">準委任契約と請負契約の違い</span>" in diff
    en = render.render_answer(answer(standalone_query="difference of A and B", lang="en"), "and B?", lookup)
    assert "Search query:" in en


def test_plain_answer_recovers_text():
    for a in (answer(), answer(curated=True, stale=True, notice="n"), answer(text=XSS + " & [1]"),
              answer(citations=(), standalone_query="")):
        assert render.plain_answer(render.render_answer(a, "q", lookup)) == a.text.strip()


def test_trailing_source_list_is_replaced_by_the_sources_block():
    text = "BPOは経営手法です。 [1]\n対象は経理です。 [1]\n\n出典:\n- [1] BPOとは › BPOの定義"
    a = answer(text=text)
    out = render.render_answer(a, "q", lookup)
    body = out.split(render.EXTRA_OPEN)[0]
    assert "出典:" not in body and "[1]" in body and "<details" in out
    assert render.plain_answer(out) == render.display_body(text) == "BPOは経営手法です。 [1]\n対象は経理です。 [1]"
    en = "BPO is a method [1].\n\nSources:\n- [1] What is BPO › Definition\n- [2] X › Y\n"
    assert render.display_body(en) == "BPO is a method [1]."
    refusal = REFUSAL_JA + "\n\n次のトピックなら回答できます:\n- BPOとは何ですか？"
    assert render.display_body(refusal) == refusal  # suggestion lists are not source lists
    assert all("出典:" not in s for s in render.stream_answer(a, "q", lookup))


def test_refusal_renders_plainly():
    a = Answer(text=REFUSAL_JA, refused=True, kind="refusal", lang="ja", suggestions=("BPOとは何ですか？",))
    out = render.render_answer(a, "天気は？", lookup)
    assert out.startswith(REFUSAL_JA) and "<details" not in out


# -- streaming -------------------------------------------------------------------------------------------------
def test_stream_pieces_cover_the_text():
    text = "一文目です[1]。二文目です[2][3]。\n| a | b |\n|---|---|\n| 1 | 2 |\nThird sentence. Fourth [4]."
    pieces = render.stream_pieces(text)
    assert "".join(pieces) == text
    assert pieces[0] == "一文目です[1]。" and pieces[1] == "二文目です[2][3]。"
    assert len(pieces) >= 6


def test_group_pieces_caps_the_number_of_updates():
    pieces = [f"{i}。" for i in range(10)]
    grouped = render.group_pieces(pieces, 4)
    assert len(grouped) <= 4 and "".join(grouped) == "".join(pieces)
    assert render.group_pieces(pieces[:3], 4) == pieces[:3]
    long = answer(text="".join(f"文{i}です[1]。" for i in range(30)))
    assert len(list(render.stream_answer(long, "q", lookup, max_steps=4))) <= 4


def test_stream_answer_grows_and_ends_with_full_render():
    a = answer(curated=True)
    steps = list(render.stream_answer(a, "BPOとは何ですか？", lookup))
    assert len(steps) >= 2
    assert steps[-1] == render.render_answer(a, "BPOとは何ですか？", lookup)
    bodies = [render.plain_answer(s) for s in steps]
    assert all(bodies[i + 1].startswith(bodies[i]) for i in range(len(bodies) - 1))
    assert all("確認済み" in s for s in steps)  # the badge shows from the first piece


# -- history ---------------------------------------------------------------------------------------------------
def test_history_for_assistant_strips_rendering_and_normalises_shapes():
    a = answer()
    rendered = render.render_answer(a, "BPOとは？", lookup)
    hist = [
        {"role": "user", "content": [{"type": "text", "text": "BPOとは？"}]},
        {"role": "assistant", "content": [{"type": "text", "text": rendered}], "metadata": None},
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "次の質問"},
        {"role": "assistant", "content": [{"type": "file", "file": {"path": "/x"}}]},
    ]
    assert render.history_for_assistant(hist) == [
        {"role": "user", "content": "BPOとは？"},
        {"role": "assistant", "content": a.text},
        {"role": "user", "content": "次の質問"},
    ]
    assert render.history_for_assistant(None) == []


# -- onboarding / knowledge ------------------------------------------------------------------------------------
@dataclass
class Cur:
    id: str
    lang: str
    topic: str
    questions: list
    answer: str
    citations: list = field(default_factory=list)
    stale: bool = False


CURATED = [
    Cur("dx", "ja", "dx", ["DXとBPOの関係は？"], "BPOはDXを後押しします[1]。", [cite()]),
    Cur("ov", "ja", "overview", ["BPOとは何ですか？", "BPOって何？"], "BPOはノンコア業務を任せる手法です[1]。", [cite()]),
    Cur("ck", "ja", "checklist", ["初めてのBPOで確認することは？"], "目的を決めます[1]。", [cite()]),
    Cur("ct", "ja", "contracts", ["請負契約とは？"], "請負契約は成果物に責任を負います[1]。", [cite()], stale=True),
    Cur("cmp", "ja", "comparison", ["BPOとITOの違いは？"], "対象が違います[1]。", [cite()]),
    Cur("en", "en", "overview", ["What is BPO?"], "BPO hands over non-core work [1].", [cite()]),
]


def test_topics_in_learning_order():
    assert [topic for topic, _ in onboarding.group_curated(CURATED, "ja")] == [
        "overview", "comparison", "contracts", "dx", "checklist"]
    assert sorted(TOPIC_ORDER, key=topic_rank) == list(TOPIC_ORDER)
    assert topic_rank("checklist") > topic_rank("dx") and topic_rank("operations") < topic_rank("zzz")


def test_curated_search_and_render():
    groups = onboarding.group_curated(CURATED, "ja", "請負")
    assert [(t, [a.id for a in items]) for t, items in groups] == [("contracts", ["ct"])]
    assert onboarding.group_curated(CURATED, "ja", "ｂｐｏ って")[0][1][0].id == "ov"  # NFKC + all terms
    md = onboarding.render_curated(CURATED, "ja", "", lookup)
    assert md.index("### 概要") < md.index("### 比較") < md.index("### 契約") < md.index("### DX")
    assert '<span class="bpo-card-q">BPOとは何ですか？</span>' in md and "質問例: BPOって何？" in md
    assert md.count("確認済み") == 5 and md.count("bpo-stale") == 1
    assert md.count('<details class="bpo-card"') == 5 and md.count('<details class="bpo-sources"') == 5
    assert "<mark>" in md and "What is BPO?" not in md
    assert md.count('<details class="bpo-card" open') == 0  # cards start closed ...
    searched = onboarding.render_curated(CURATED, "ja", "請負")
    assert searched.count('<details class="bpo-card" open') == 1 == searched.count('<details class="bpo-card"')  # ... open in a search
    # the answer Markdown sits between blank lines, so it renders as Markdown inside the card
    assert "\n\nBPOはノンコア業務を任せる手法です[1]。\n\n" in md
    assert "該当する確認済み回答はありません" in onboarding.render_curated(CURATED, "ja", "存在しない語")
    assert onboarding.render_curated(CURATED, "ja", None, lookup) == md  # an empty search box may arrive as None
    assert onboarding.stale_count(CURATED) == 1


def test_learning_order_within_a_topic():
    doc = SourceDoc(id="bpo-overview", title="t", lang="ja", topic="overview", path="p",
                    sections=(Section("definition", "定義", "x"), Section("offshore", "オフショア", "y")))
    order = onboarding.section_order([doc])
    assert order == {("bpo-overview", "definition"): 0, ("bpo-overview", "offshore"): 1}
    items = [Cur("b", "ja", "overview", ["BPOのメリットは？"], "x", [cite()]),
             Cur("c", "ja", "overview", ["オフショアBPOとは？"], "z", [cite(sid="offshore")]),
             Cur("a", "ja", "overview", ["BPOとは何ですか？"], "y", [cite(sid="definition")])]
    md = onboarding.render_curated(items, "ja", order=order)
    # definitions first, ordered by where their sources stand in the kb; then the rest
    assert md.index('data-id="a"') < md.index('data-id="c"') < md.index('data-id="b"')


def test_curated_render_escapes():
    evil = Cur("x", "ja", "overview", [XSS], XSS, [cite(title=XSS)])
    md = onboarding.render_curated([evil], "ja")
    assert "<script" not in md and "<img" not in md


def test_doc_and_status_render():
    doc = SourceDoc(id="d1", title="文書<b>", lang="ja", topic="contracts", path="p",
                    sections=(Section(id="s1", title="節", text="- 箇条書き。\n本文です。"),))
    md = onboarding.render_doc(doc, "ja")
    assert "## 文書&lt;b&gt;" in md and "### 節" in md and "- 箇条書き。" in md
    assert onboarding.doc_choices([doc]) == [("文書<b> (d1)", "d1")]
    status = onboarding.render_status({"documents": 24, "keyword_health": {"請負": 4}, "x": "a|b<i>"}, 2, "ja")
    assert "| 要再確認の確認済み回答 | 2 |" in status and "| documents | 24 |" in status
    assert "a\\|b&lt;i&gt;" in status and '"請負": 4' in status
    assert "status unavailable" in onboarding.render_status(None, 0, "en", "status unavailable")


def test_reason_choices():
    assert [c for _, c in reason_choices("ja")] == list(REASON_CODES)
    assert [label for label, _ in reason_choices("ja")] == ["引用が違う", "情報が古い", "不完全", "質問の誤解", "その他"]


# -- auth ------------------------------------------------------------------------------------------------------
def test_auth_line_roundtrip(tmp_path):
    line = auth.make_line("alice", "s3cret-パス", iterations=20_000)
    user, _, encoded = line.partition(":")
    assert user == "alice" and re.fullmatch(r"pbkdf2_sha256\$20000\$[0-9a-f]{32}\$[A-Za-z0-9+/=]{44}", encoded)
    assert "s3cret" not in line
    assert auth.verify_password("s3cret-パス", encoded) and not auth.verify_password("wrong", encoded)
    path = tmp_path / "users.txt"
    path.write_text("# comment\n\n" + line + "\n" + auth.make_line("bob", "pw", iterations=20_000) + "\n")
    verify = auth.make_verifier(auth.parse_auth_file(path))
    assert verify("alice", "s3cret-パス") and verify("bob", "pw")
    assert not verify("alice", "pw") and not verify("carol", "pw") and not verify("", "")


def test_auth_known_django_vector():
    # Same layout as Django's PBKDF2PasswordHasher: base64(pbkdf2_sha256(password, salt as text, iterations)).
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 10_000, 32)).decode()
    assert auth.verify_password("pw", f"pbkdf2_sha256$10000$salt${digest}")


@pytest.mark.parametrize("content", ["", "# only a comment\n", "alice:plaintext\n", "alice:md5$1$s$h\n",
                                     "alice:pbkdf2_sha256$10$s$h\n", "pbkdf2_sha256$20000$s$h\n"])
def test_auth_file_rejects_bad_lines(tmp_path, content):
    path = tmp_path / "users.txt"
    path.write_text(content)
    with pytest.raises(auth.AuthFileError):
        auth.parse_auth_file(path)


def test_verify_rejects_malformed_hashes():
    for bad in ("", "pbkdf2_sha256$x$s$h", "sha1$1000$s$h", "pbkdf2_sha256$99999999999$s$h"):
        assert not auth.verify_password("pw", bad)
