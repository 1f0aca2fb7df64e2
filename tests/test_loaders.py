"""Loaders: every supported format becomes sections of the right text, the plain-text heading heuristic
finds the seed article's headings, and every kind of bad input is named with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpo_assistant.settings import REPO_ROOT, Settings
from bpo_assistant.ingest.headings import is_heading_like, plain_text_blocks, unwrap
from bpo_assistant.ingest.loaders import LoadError, doc_id_for, load_file

SEED = REPO_ROOT.parent / "shared" / "seeds" / "000_4748b9ecf62fd7cc.txt"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(kb_dir=tmp_path / "kb", data_dir=tmp_path / "data", embedder="fake:8")


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF written by hand (no PDF library needed): one Type0 font whose ToUnicode CMap maps
    2-byte codes to the characters used, so pypdf extracts Japanese text exactly."""
    chars = sorted({c for lines in pages for line in lines for c in line})
    code = {c: i + 1 for i, c in enumerate(chars)}
    entries = [f"<{code[c]:04X}> <{ord(c):04X}>" for c in chars]
    bfchars = "\n".join(f"{len(entries[i:i + 100])} beginbfchar\n" + "\n".join(entries[i:i + 100]) + "\nendbfchar"
                        for i in range(0, len(entries), 100))
    cmap = ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n"
            "/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n" + bfchars
            + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n").encode()

    def stream(data: bytes) -> bytes:
        return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: ("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{10 + 2 * i} 0 R" for i in range(len(pages))),
                                                        len(pages))).encode(),
        3: b"<< /Type /Font /Subtype /Type0 /BaseFont /T /Encoding /Identity-H /DescendantFonts [4 0 R]"
           b" /ToUnicode 5 0 R >>",
        4: b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /T"
           b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
           b" /FontDescriptor 6 0 R /DW 1000 >>",
        5: stream(cmap),
        6: b"<< /Type /FontDescriptor /FontName /T /Flags 4 /FontBBox [0 0 1000 1000] /ItalicAngle 0 /Ascent 1000"
           b" /Descent 0 /CapHeight 1000 /StemV 80 >>",
    }
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 10 Tf", "12 TL", "50 800 Td"] + [
            f"<{''.join(f'{code[c]:04X}' for c in line)}> Tj T*" for line in lines] + ["ET"]
        objs[10 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
                            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {11 + 2 * i} 0 R >>").encode()
        objs[11 + 2 * i] = stream("\n".join(ops).encode())
    out, offsets = bytearray(b"%PDF-1.4\n"), {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    size, xref = max(objs) + 1, len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join((b"%010d 00000 n \n" % offsets[n]) if n in offsets else b"0000000000 65535 f \n"
                    for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def titles(doc) -> list[str]:
    return [s.title for s in doc.sections]


# ---------------------------------------------------------------- formats


def test_kb_markdown_keeps_front_matter_and_section_ids(settings, tmp_path):
    from conftest import write_doc

    path = write_doc(settings.kb_dir, "ja", "itaku", {"definition": "委託とは業務を任せることです。", "scope": "範囲を決めます。"},
                     title="委託の基本", topic="contracts")
    doc = load_file(path, settings)
    assert (doc.id, doc.title, doc.lang, doc.topic) == ("itaku", "委託の基本", "ja", "contracts")
    assert [s.id for s in doc.sections] == ["definition", "scope"]
    assert doc.sections[0].text == "委託とは業務を任せることです。"


def test_markdown_outside_kb_needs_only_id_title_lang(settings, tmp_path):
    text = "---\nid: notes\ntitle: メモ\nlang: ja\n---\n\n## 概要 {#summary}\n\nBPOは外部委託の一形態です。\n"
    outside = tmp_path / "notes.md"
    outside.write_text(text, encoding="utf-8")
    doc = load_file(outside, settings)
    assert (doc.id, doc.topic, titles(doc)) == ("notes", "general", ["概要"])
    inside = settings.kb_dir / "ja" / "notes.md"  # the same file in kb/ja must meet the full contract
    inside.parent.mkdir(parents=True)
    inside.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError, match="field 'topic' is missing"):
        load_file(inside, settings)


def test_markdown_without_front_matter_uses_hash_headings(settings, tmp_path):
    path = tmp_path / "Guide.md"
    path.write_text("# Outsourcing guide\n\nIntro line here.\n\n## Scope\n\nThe **scope** is [set](http://x) early.\n"
                    "#### minor\n\nStill scope.\n", encoding="utf-8")
    doc = load_file(path, settings)
    assert (doc.id, doc.title, doc.lang) == ("guide", "Outsourcing guide", "en")
    assert titles(doc) == ["Outsourcing guide", "Scope"]
    assert doc.sections[1].text == "The scope is set early.\nminor\nStill scope."


def test_plain_text(settings, tmp_path):
    path = tmp_path / "memo.txt"
    path.write_text("委託の基本\n\n委託は業務を外部に任せることです。\n範囲を最初に決めます。\n\n契約の種類\n請負と準委任があります。\n",
                    encoding="utf-8")
    doc = load_file(path, settings)
    assert (doc.id, doc.title, doc.lang) == ("memo", "委託の基本", "ja")
    assert titles(doc) == ["委託の基本", "契約の種類"]
    assert doc.sections[1].text == "請負と準委任があります。"


def test_html_headings_become_sections(settings, tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Page title</title><style>p{}</style></head><body><nav>メニュー</nav>"
        "<h1>BPOの概要</h1><p>BPOは業務プロセスを\n外部に委託する手法です。</p>"
        "<h2>対象業務</h2><ul><li>経理が<b>代表的</b>な対象です。</li><li>人事も対象です。</li></ul>"
        "<h3>注意</h3><p>契約を確認します。<br>費用も確認します。</p><script>var x = '委託';</script></body></html>",
        encoding="utf-8")
    doc = load_file(path, settings)
    assert doc.title == "BPOの概要" and doc.lang == "ja"
    assert titles(doc) == ["BPOの概要", "対象業務", "注意"]
    assert doc.sections[0].text == "BPOは業務プロセスを外部に委託する手法です。"  # source newline is not a break
    assert doc.sections[1].text == "経理が代表的な対象です。\n人事も対象です。"  # inline <b> stays inside
    assert doc.sections[2].text == "契約を確認します。\n費用も確認します。"
    assert "メニュー" not in str(doc.sections) and "var x" not in str(doc.sections)


def test_pdf_pages_with_guessed_headings(settings, tmp_path):
    path = tmp_path / "contract.pdf"
    path.write_bytes(make_pdf([
        ["BPOの基本", "BPOは業務プロセスを外部に委託する経営手法です。", "対象は主にノンコア業務です。"],
        ["契約形態", "請負契約は成果物の完成を目的とします。", "準委任契約は業務の遂行を目的とします。"],
    ]))
    doc = load_file(path, settings)
    assert (doc.id, doc.title, doc.lang) == ("contract", "BPOの基本", "ja")
    assert titles(doc) == ["BPOの基本", "契約形態"]
    assert doc.sections[1].text == "請負契約は成果物の完成を目的とします。\n準委任契約は業務の遂行を目的とします。"


def test_pdf_hard_wrapped_lines_are_rejoined(settings, tmp_path):
    body = ("Business process outsourcing moves a whole process such as accounting to an outside vendor. "
            "The vendor runs the process under a contract with service levels. Companies keep their core work.")
    wrapped = [body[i:i + 48] for i in range(0, len(body), 48)]
    path = tmp_path / "wrapped.pdf"
    path.write_bytes(make_pdf([["Overview"] + wrapped]))
    doc = load_file(path, settings)
    assert titles(doc) == ["Overview"]
    # one paragraph again: no wrapped fragment became a heading or a sentence of its own
    assert doc.sections[0].text.replace(" ", "") == body.replace(" ", "")


def test_docx_heading_styles_become_sections(settings, tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("委託ガイド", style="Title")
    d.add_heading("委託の目的", level=1)
    d.add_paragraph("BPOの目的はコア業務への集中です。")
    d.add_heading("費用", level=2)
    d.add_paragraph("費用は月額で支払います。")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "月額", "100万円"
    path = tmp_path / "委託ガイド.docx"
    d.save(path)
    doc = load_file(path, settings)
    assert doc.title == "委託ガイド" and doc.id.startswith("doc-")  # non-ASCII stem: hashed id
    assert titles(doc) == ["委託の目的", "費用"]
    assert doc.sections[1].text == "費用は月額で支払います。\n月額 | 100万円"


def test_doc_ids_are_ascii_and_stable():
    assert doc_id_for(Path("/x/My Notes_v2.txt")) == "my-notes-v2"
    assert doc_id_for(Path("/x/議事録.txt")) == doc_id_for(Path("/y/議事録.pdf")) != doc_id_for(Path("/x/議事録2.txt"))
    assert doc_id_for(Path("/x/議事録.txt")).isascii()


# ---------------------------------------------------------------- heading heuristic


def test_heading_rules():
    assert is_heading_like("BPOとアウトソーシングの違いとは?")
    assert is_heading_like("まとめ")
    assert not is_heading_like("BPOは外部委託の一形態です。")  # sentence end
    assert not is_heading_like("たとえば、")  # clause end
    assert not is_heading_like("- BPOサービス")  # bullet
    assert not is_heading_like("12")  # page number
    assert not is_heading_like("https://example.com/a")
    assert not is_heading_like("オフショアとニアショアを組み合わせたBPOサービスモデルについて動画でご紹介しています")  # too long


def test_short_line_needs_body_after_it():
    blocks = plain_text_blocks("BPOの相談ならFPTへ\nお問い合わせ\n\n本文はここから始まり、最後まで続きます。\n")
    # 'BPOの相談ならFPTへ' is followed by another short line, not by body: it stays body text
    assert [h for h, _ in blocks] == [None, "お問い合わせ"]
    assert blocks[0][1] == ["BPOの相談ならFPTへ"]


def test_unwrap_leaves_one_paragraph_per_line_text_alone():
    lines = ["見出し", "これは一段落を一行に書いた長い本文で、折り返しはありません。" * 3, "次の見出し", "短い本文です。"]
    assert unwrap(lines) == lines


@pytest.mark.skipif(not SEED.exists(), reason="seed article not present")
def test_seed_article_sections(settings):
    doc = load_file(SEED, settings)
    got = titles(doc)
    expected = ["BPOとは?", "BPOを委託する目的", "BPOとアウトソーシングの違いとは?", "その他似た言葉との違い", "バックオフィス業務",
                "事務", "マーケティング", "コンタクトセンター", "IT・システム関連", "BPO導入のメリット", "自社のメインの業務に集中できる",
                "専門分野の委託による品質の向上", "コスト削減", "変化への柔軟な対応", "顧客への満足度上昇", "BPO委託時の注意点",
                "コストに見合っているかの確認", "外部委託のための準備", "社内体制の整理", "対象業務が一致しているか", "導入までの速度",
                "コスト面はどうか", "実績は豊富か", "セキュリティ面は万全か", "BPOにおける委託の契約形態", "委任・準委任契約の場合",
                "請負契約の場合", "BPOとDXのかかわりとは?", "まとめ"]
    it = iter(got)
    assert all(t in it for t in expected), got  # in this order
    assert doc.title == "BPOとは?" and doc.lang == "ja"
    # no body sentence was promoted to a heading, and no text was lost
    assert all(len(t) <= 40 and not t.endswith("。") for t in got)
    assert "BPOの相談ならFPTへ" not in got and "FPTのBPOサービスについて" not in got
    body = "\n".join(s.text for s in doc.sections)
    for line in SEED.read_text(encoding="utf-8").splitlines():
        if line.strip() and line.strip() not in got:
            assert line.strip() in body
    assert len({s.id for s in doc.sections}) == len(doc.sections)


# ---------------------------------------------------------------- bad input


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name,data,reason", [
    ("kb/ja/broken.md", "---\nid: x\ntitle: [unclosed\nlang: ja\n---\n\n## A {#a}\n\n本文です。\n".encode(),
     r"line \d+: front matter is not valid YAML"),
    ("kb/ja/nofm.md", "## A {#a}\n\n本文です。\n".encode(), "line 1: missing YAML front matter"),
    ("latin1.txt", "café déjà vu".encode("latin-1"), r"invalid UTF-8 at byte 3 \(line 1\)"),
    ("binary.txt", b"abc\x00\x01\x02def", r"binary content \(NUL bytes\)"),
    ("empty.txt", b"", "no text: the file is empty"),
    ("blank.txt", b" \n\t\n", "no text"),
    ("script-only.html", b"<html><body><script>x()</script></body></html>", "no text"),
    ("sheet.xlsx", b"PK\x03\x04", r"unsupported file type '\.xlsx'"),
    ("noext", b"hello", "unsupported file type '\\(no extension\\)'"),
    ("fake.pdf", b"%PDF-1.4 not really", "not a readable PDF"),
    ("fake.docx", b"not a zip", r"not a readable DOCX"),
])
def test_bad_input_is_named_with_its_reason(settings, tmp_path, name, data, reason):
    path = _write(tmp_path / name, data)
    with pytest.raises(LoadError, match=reason) as info:
        load_file(path, settings)
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_broken_front_matter_reports_the_yaml_line(settings, tmp_path):
    text = "---\nid: x\ntitle: ok\nlang: ja\ntags: [a, b\n---\n\n## A {#a}\n\nx。\n"
    path = _write(tmp_path / "kb" / "ja" / "bad.md", text.encode())
    with pytest.raises(LoadError) as info:
        load_file(path, settings)
    assert info.value.reason.startswith("line ") and "front matter is not valid YAML" in info.value.reason
    assert info.value.reason.split()[1] == "5:"  # the line of the unclosed list


def test_over_the_size_limit(tmp_path):
    small = Settings(kb_dir=tmp_path / "kb", data_dir=tmp_path / "d", max_file_bytes=100)
    path = _write(tmp_path / "big.txt", ("委託の本文です。" * 20).encode())
    with pytest.raises(LoadError, match=r"file is 480 bytes, over the limit of 100 \(BPO_MAX_FILE_BYTES\)"):
        load_file(path, small)


def test_pdf_without_text_layer(settings, tmp_path):
    path = _write(tmp_path / "scan.pdf", make_pdf([[]]))
    with pytest.raises(LoadError, match=r"1 page\(s\) without extractable text"):
        load_file(path, settings)
