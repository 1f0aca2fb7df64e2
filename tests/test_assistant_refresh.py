"""A long-running chat follows a re-ingest instead of querying a collection that ingest has dropped."""

from __future__ import annotations

from bpo_assistant.assistant import Assistant
from conftest import write_doc
from bpo_assistant.ingest.pipeline import run_ingest


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


def _two_doc_kb(kb, extra: str = "") -> None:
    write_doc(kb, "ja", "bpo-overview", {"definition": "BPOは業務プロセスを外部に任せる手法です。",
                                         "purpose": "BPOの目的はコア業務への集中です。" + extra})


def test_a_question_on_a_snapshot_whose_collection_vanished_is_answered_from_the_new_one(fake_settings, monkeypatch):
    """Two ingests while a snapshot is in use drop its collection; the question is retried on the new one."""
    from bpo_assistant.ingest import vectorstore

    # An edit normally writes a delta beside the base that this snapshot reads too; make each one write a new base,
    # so two ingests later the snapshot's base is gone (what compaction does once enough edits pile up).
    monkeypatch.setattr(vectorstore, "REWRITE_FLOOR", 0)
    _two_doc_kb(fake_settings.kb_dir)
    run_ingest(fake_settings, progress=False)
    assistant = Assistant.from_settings(fake_settings)
    stale = assistant.kb
    for n in (1, 2):
        _two_doc_kb(fake_settings.kb_dir, f"改訂{n}。")
        run_ingest(fake_settings, progress=False)
    assistant.knowledge = lambda force=False, real=assistant.knowledge: stale if not force else real(force=True)
    answer = assistant.ask("BPOの目的は？")
    assert answer.text and assistant.kb.generation != stale.generation


def test_answers_keep_coming_while_the_kb_is_reingested(fake_settings):
    """Eight sessions ask without pause while an owner re-ingests five times: no question fails."""
    import threading

    _two_doc_kb(fake_settings.kb_dir)
    run_ingest(fake_settings, progress=False)
    assistant = Assistant.from_settings(fake_settings)
    errors: list[BaseException] = []
    answered = [0]
    stop = threading.Event()

    def session() -> None:
        while not stop.is_set():
            try:
                assert assistant.ask("BPOの目的は？").text
                answered[0] += 1
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for n in range(5):
            _two_doc_kb(fake_settings.kb_dir, f"改訂{n}。")
            run_ingest(fake_settings, progress=False)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert answered[0] > 8
