"""A long-running chat follows a re-ingest instead of querying a collection that ingest has dropped."""

from __future__ import annotations

from bpo_assistant.assistant import Assistant
from conftest import write_doc
from ingest.pipeline import run_ingest


def test_assistant_moves_to_the_new_generation_after_reingest(fake_settings):
    kb = fake_settings.kb_dir
    write_doc(kb, "ja", "bpo-overview", {"definition": "BPOは業務プロセスを外部に任せる手法です。"})
    run_ingest(fake_settings, progress=False)
    assistant = Assistant.from_settings(fake_settings)
    old = assistant.index.generation
    write_doc(kb, "ja", "bpo-overview", {"definition": "BPOは業務プロセスを外部に任せる手法です。",
                                         "purpose": "BPOの目的はコア業務への集中です。"})
    run_ingest(fake_settings, progress=False)
    answer = assistant.ask("BPOの目的は？")  # must not crash on the dropped collection
    assert assistant.index.generation != old
    assert any(c.section_id == "purpose" for c in assistant.index.chunks.values())
    assert answer.text
