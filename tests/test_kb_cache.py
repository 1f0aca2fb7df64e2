"""The kb parse cache (bpo_assistant/kbcache.py): a start re-parses only the kb files that changed, returns exactly
what an uncached load returns (broken files and duplicate ids still reported), and a cache it cannot trust is
ignored with its reason, never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bpo_assistant import kbcache
from bpo_assistant.kbfiles import load_kb_docs, scan_kb
from bpo_assistant.limits import Limits
from conftest import write_doc


@pytest.fixture
def settled(monkeypatch):
    """Files a test has just written count as settled; the racy window has a test of its own."""
    monkeypatch.setattr(kbcache, "RACY_NS", 0)


def _kb(kb: Path) -> None:
    write_doc(kb, "ja", "bpo-overview", {"definition": "BPOは業務を外部に任せる手法です。"})
    write_doc(kb, "en", "bpo-overview", {"definition": "BPO hands a process to a provider."})
    write_doc(kb, "ja", "vendor", {"choose": "委託先は実績で選びます。", "contract": "契約は一年単位です。"},
              topic="vendor-selection")
    write_doc(kb, "ja", "zz-copy", {"x": "同じidの二つ目の文書です。"}, title="copy")
    (kb / "ja" / "zz-copy.md").write_text(
        (kb / "ja" / "zz-copy.md").read_text(encoding="utf-8").replace("id: zz-copy", "id: vendor"), "utf-8")
    (kb / "ja" / "broken-yaml.md").write_text("---\nid: [unclosed\n---\n\n## a {#a}\n\n本文。\n", "utf-8")
    (kb / "ja" / "empty.md").write_text("", "utf-8")
    (kb / "en" / "wrong-lang.md").write_text(
        (kb / "en" / "bpo-overview.md").read_text(encoding="utf-8").replace("lang: en", "lang: ja"), "utf-8")
    (kb / "ja" / "outside.md").symlink_to(kb.parent / "elsewhere.md")


def _plain(docs, errors):
    return docs, [str(e) for e in errors]


def test_cached_load_equals_an_uncached_one_with_broken_files_and_duplicates(tmp_path, settled):
    kb, data = tmp_path / "kb", tmp_path / "data"
    _kb(kb)
    expected = _plain(*load_kb_docs(kb))
    assert any("duplicate id 'vendor'" in e for e in expected[1])
    assert any("not valid YAML" in e for e in expected[1]) and any("empty" in e for e in expected[1])
    assert any("kb/en/" in e for e in expected[1]) and any("broken symlink" in e for e in expected[1])

    first = scan_kb(kb, cache_dir=data)
    second = scan_kb(kb, cache_dir=data)
    assert (first.parsed, first.reused, first.reason) == (7, 0, "no kb-docs.cache yet")
    assert (second.parsed, second.reused, second.reason) == (0, 7, "")
    assert _plain(first.docs, first.errors) == expected == _plain(second.docs, second.errors)
    assert second.docs[("ja", "vendor")].path == str(kb / "ja" / "vendor.md")  # the path as this load spells it


def test_only_changed_files_are_parsed_and_edits_show(tmp_path, settled):
    kb, data = tmp_path / "kb", tmp_path / "data"
    _kb(kb)
    scan_kb(kb, cache_dir=data)
    write_doc(kb, "ja", "bpo-overview", {"definition": "BPOは業務プロセスの外部委託です。"})
    write_doc(kb, "ja", "new-doc", {"a": "新しい文書です。"})
    (kb / "ja" / "empty.md").unlink()
    scan = scan_kb(kb, cache_dir=data)
    assert (scan.parsed, scan.reused) == (2, 5)
    assert scan.docs[("ja", "bpo-overview")].sections[0].text == "BPOは業務プロセスの外部委託です。"
    assert ("ja", "new-doc") in scan.docs
    assert not any("empty.md" in str(e) for e in scan.errors)
    assert _plain(scan.docs, scan.errors) == _plain(*load_kb_docs(kb))
    assert scan_kb(kb, cache_dir=data).parsed == 0


def test_a_same_size_edit_with_its_old_mtime_restored_is_still_seen(tmp_path, settled):
    """`touch -d`, `rsync -t` or an archive restore can put the old mtime back; ctime and the inode still move."""
    kb, data = tmp_path / "kb", tmp_path / "data"
    path = write_doc(kb, "ja", "doc", {"a": "料金は月額です。"})
    st = path.stat()
    scan_kb(kb, cache_dir=data)
    path.write_text(path.read_text(encoding="utf-8").replace("月額", "年額"), "utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    assert scan_kb(kb, cache_dir=data).docs[("ja", "doc")].sections[0].text == "料金は年額です。"


def test_a_file_changed_during_the_racy_window_is_parsed_again(tmp_path):
    """A second save in the same timestamp tick could keep the stat; such a file is not trusted from the cache."""
    kb, data = tmp_path / "kb", tmp_path / "data"
    write_doc(kb, "ja", "doc", {"a": "本文です。"})
    scan_kb(kb, cache_dir=data)
    scan = scan_kb(kb, cache_dir=data)
    assert (scan.parsed, scan.reused) == (1, 0)


@pytest.mark.parametrize("damage, why", [
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], "truncated or corrupt"),  # one bit of the body
    (lambda b: b"\x00garbage" + b, "does not decode"),
    (lambda b: b.replace(b'"version": 1', b'"version": 99', 1), "version 99, not 1"),
    (lambda b: b"", "does not decode"),
])
def test_a_damaged_or_foreign_cache_is_ignored_with_its_reason_and_rewritten(tmp_path, settled, damage, why):
    kb, data = tmp_path / "kb", tmp_path / "data"
    _kb(kb)
    scan_kb(kb, cache_dir=data)
    cache = data / kbcache.FILE
    cache.write_bytes(damage(cache.read_bytes()))
    scan = scan_kb(kb, cache_dir=data)
    assert scan.parsed == 7 and why in scan.reason
    assert _plain(scan.docs, scan.errors) == _plain(*load_kb_docs(kb))
    assert scan_kb(kb, cache_dir=data).parsed == 0  # rewritten whole


def test_other_limits_or_another_kb_do_not_use_the_cache(tmp_path, settled):
    kb, data = tmp_path / "kb", tmp_path / "data"
    write_doc(kb, "ja", "doc", {"a": "本文です。", "b": "二つ目です。"})
    scan_kb(kb, cache_dir=data)
    tight = scan_kb(kb, Limits(sections=1), cache_dir=data)
    assert tight.parsed == 1 and "another parser, limits or kb folder" in tight.reason
    assert "BPO_MAX_SECTIONS" in str(tight.errors[0]) and not tight.docs
    other = tmp_path / "kb2"
    write_doc(other, "ja", "doc", {"a": "別のkbです。"})
    assert scan_kb(other, cache_dir=data).docs[("ja", "doc")].sections[0].text == "別のkbです。"


def test_an_unwritable_data_dir_still_loads_and_says_why(tmp_path, settled):
    kb, data = tmp_path / "kb", tmp_path / "data"
    write_doc(kb, "ja", "doc", {"a": "本文です。"})
    data.write_text("a file where the data dir should be", "utf-8")
    scan = scan_kb(kb, cache_dir=data)
    assert ("ja", "doc") in scan.docs and "not written" in scan.reason
