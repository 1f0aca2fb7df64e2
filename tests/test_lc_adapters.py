"""The kb loader and the sentence splitter as LangChain components (issue 12's LangChain surface)."""

from __future__ import annotations

from langchain_core.document_loaders import BaseLoader
from langchain_text_splitters import TextSplitter

from bpo_assistant.ingest.chunking import chunk_document
from bpo_assistant.ingest.lc_adapters import KbLoader, SentenceSplitter
from bpo_assistant.ingest.loaders import load_file
from bpo_assistant.settings import REPO_ROOT
from conftest import make_settings


def test_the_loader_yields_every_kb_section_with_the_index_ids(tmp_path):
    settings = make_settings(tmp_path / "data")
    loader = KbLoader(settings)
    assert isinstance(loader, BaseLoader)
    docs = loader.load()
    expected = {(d.lang, d.id, s.id) for p in sorted((REPO_ROOT / "kb").glob("*/*.md")) if p.parent.name in ("ja", "en")
                for d in [load_file(p, settings)] for s in d.sections}
    assert {(d.metadata["lang"], d.metadata["doc_id"], d.metadata["section_id"]) for d in docs} == expected
    contract = next(d for d in docs if d.id == "ja:contract-types#work-contract")
    assert "請負" in contract.page_content and contract.metadata["topic"] == "contracts"
    assert loader.failed == []


def test_a_broken_file_is_named_and_skipped_and_the_rest_is_loaded(kb_copy, tmp_path):
    (kb_copy / "ja" / "broken.md").write_bytes(b"\x00\x00not text")
    loader = KbLoader(make_settings(tmp_path / "data", kb_dir=kb_copy))
    docs = loader.load()
    assert [path for path, _ in loader.failed] == [str(kb_copy / "ja" / "broken.md")]
    assert any(d.metadata["doc_id"] == "bpo-overview" for d in docs)


def test_the_sentence_splitter_cuts_where_the_answers_quote_and_keeps_metadata(tmp_path):
    splitter = SentenceSplitter()
    assert isinstance(splitter, TextSplitter)
    text = "請負は成果物の完成を約束する契約です。「検収。」の条件も決めます！準委任はどうか？"
    assert splitter.split_text(text) == ["請負は成果物の完成を約束する契約です。", "「検収。」の条件も決めます！", "準委任はどうか？"]
    settings = make_settings(tmp_path / "data")
    docs = [d for d in KbLoader(settings).load() if d.id == "ja:contract-types#work-contract"]
    pieces = splitter.split_documents(docs)
    doc = load_file(REPO_ROOT / "kb" / "ja" / "contract-types.md", settings)
    _, sentences = chunk_document(doc, settings.chunk_size, settings.chunk_overlap_sentences)
    assert [p.page_content for p in pieces] == [s.text for s in sentences if s.section_id == "work-contract"]
    assert all(p.metadata["section_id"] == "work-contract" for p in pieces)
