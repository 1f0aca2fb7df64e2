"""The section router at scale (issue 11): above Settings.router_max_sections it learns only the sections the
question bank or a curated answer teaches, so training stops growing with the kb, and a section it does not know
is still answered through dense + BM25 retrieval. The real kb is far below the limit and trains as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_settings, write_doc

from benchmarks import synthkb
from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant.kbfiles import load_kb_docs
from bpo_assistant.settings import REPO_ROOT, Settings
from bpo_assistant.ingest import routing
from bpo_assistant.ingest.chunking import chunk_document, embed_text
from bpo_assistant.ingest.routing import ALL, TAUGHT, training_set

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def kb_chunks(kb_dir, s: Settings):
    docs, errors = load_kb_docs(kb_dir)
    assert errors == []
    return [c for d in docs.values() for c in chunk_document(d, s.chunk_size, s.chunk_overlap_sentences)[0]]


def taught(rows) -> list[tuple]:
    """What the routers learn from a row (its path differs between two copies of one kb)."""
    return [(r["text"], r["lang"], r["section"], r.get("curated"), r["kind"]) for r in rows]


def labels_of(chunks) -> set[str]:
    return {f"{c.doc_id}#{c.section_id}" for c in chunks}


def test_the_real_kb_trains_a_class_per_section_whatever_the_limit():
    """The real kb is below the limit, and every one of its sections is taught anyway: the bounded mode could not
    change a single row, so its router is the one it always was."""
    s = Settings()
    chunks = kb_chunks(REPO_ROOT / "kb", s)
    full = training_set(REPO_ROOT / "kb", chunks, s.router_max_sections)
    assert full.mode == ALL and "a class per section" in full.reason
    assert {r["section"] for r in full.rows} == labels_of(chunks)
    bounded = training_set(REPO_ROOT / "kb", chunks, max_sections=0)
    assert bounded.mode == TAUGHT
    assert bounded.rows == full.rows and bounded.problems == full.problems


def test_a_kb_past_the_limit_trains_the_real_kbs_router_not_one_class_per_section(tmp_path):
    """3,000 sections, ~2,850 of them synthetic documents no bank question names: the rows (and so the router,
    whose training is seeded) are exactly the real kb's, not two heading rows and a class per section."""
    s = Settings()
    kb = synthkb.build(3000, tmp_path, s.chunk_size, s.chunk_overlap_sentences, REPO_ROOT)
    chunks = kb_chunks(kb.kb_dir, s)
    big = training_set(kb.kb_dir, chunks, s.router_max_sections)
    real_chunks = kb_chunks(REPO_ROOT / "kb", s)
    real = training_set(REPO_ROOT / "kb", real_chunks, s.router_max_sections)
    assert big.sections > s.router_max_sections and big.mode == TAUGHT
    assert taught(big.rows) == taught(real.rows) and big.classes == len(labels_of(real_chunks))
    assert f"{big.sections} sections > router_max_sections {s.router_max_sections}" in big.reason
    assert "dense + BM25" in big.reason


class AliasEmbeddings(FakeEmbeddings):
    """The fake embedder, except that a query holding one of `aliases` gets the vector of that alias's passage
    (the fake gives different texts unrelated vectors, so a question could never resemble its section)."""

    def __init__(self, dim: int, aliases: dict[str, str]) -> None:
        super().__init__(dim)
        self.aliases = aliases

    def _queries(self, texts):
        return self._passages([next((p for k, p in self.aliases.items() if k in t), t) for t in texts])


BANK = """doc: itaku
lang: ja
sections:
  definition:
    - 委託とは何ですか？
    - 委託の意味は？
  risks:
    - 委託のリスクは？
    - 委託で気をつけることは？
"""


@pytest.fixture
def bounded_kb(tmp_path):
    """Two taught sections (itaku), one untaught document of another topic (penguin), a limit below the kb."""
    s = make_settings(tmp_path / "data", tmp_path / "kb", embedder="fake:32", router_max_sections=2)
    write_doc(s.kb_dir, "ja", "itaku", {"definition": "委託とは業務を外部に任せることです。",
                                        "risks": "委託には情報漏洩のリスクがあります。"})
    write_doc(s.kb_dir, "ja", "penguin", {"feeding": "ペンギン飼育の給餌記録は毎朝確認します。\n"
                                                     "ペンギン飼育の給餌量は体重で決めます。"}, topic="operations")
    (s.kb_dir / "questions/ja").mkdir(parents=True)
    (s.kb_dir / "questions/ja/itaku.yaml").write_text(BANK, encoding="utf-8")
    return s


def test_a_section_the_router_does_not_know_is_answered_through_retrieval(bounded_kb, capsys):
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.index import current_generation, generation_dir
    from bpo_assistant.ingest.pipeline import cli_status, run_ingest

    s = bounded_kb
    run_ingest(s, progress=False)
    gdir = generation_dir(s, current_generation(s))
    meta = json.loads((gdir / "meta.json").read_text(encoding="utf-8"))["router"]
    assert meta["mode"] == TAUGHT and meta["sections"] == 3 and meta["router_sections"] == 2
    classes = json.loads((gdir / "router-sections.json").read_text(encoding="utf-8"))["classes"]
    assert classes == ["itaku#definition", "itaku#risks"]
    rows = [json.loads(line) for line in (gdir / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert not [r for r in rows if r["section"].startswith("penguin")]  # no heading rows for it either

    penguin = [c for c in kb_chunks(s.kb_dir, s) if c.doc_id == "penguin"][0]
    assistant = Assistant.from_settings(s, AliasEmbeddings(32, {"給餌": embed_text(penguin)}))
    answer = assistant.ask("ペンギン飼育の給餌記録はいつ確認しますか？")
    assert not answer.refused, answer.reason
    assert answer.sections == ("penguin#feeding",)
    # A topic holding only sections the router does not know: nothing routed, still answered, no KeyError.
    answer = assistant.ask("ペンギン飼育の給餌量は何で決めますか？", topic="operations")
    assert not answer.refused and answer.sections == ("penguin#feeding",)
    assert answer.confidence == 0.0  # the router had nothing to say about it

    cli_status(s)  # exits 1 here: this tiny kb lacks the keyword probes' terms
    assert "taught-sections: 3 sections > router_max_sections 2" in capsys.readouterr().out


def test_the_bounded_router_keeps_its_calibration(bounded_kb):
    """The temperature is fitted on cross-validated logits as before; probabilities stay a distribution over
    the taught sections."""
    from bpo_assistant.router import Router

    s = bounded_kb
    chunks = kb_chunks(s.kb_dir, s)
    gdir = s.data_dir / "g"
    gdir.mkdir(parents=True)
    summary = routing.build(gdir, s.kb_dir, chunks, FakeEmbeddings(32), None, max_sections=2)
    assert summary["mode"] == TAUGHT and summary["routers"]
    router = Router.load(gdir / "router-sections", "fake:32")
    assert router.report["cv_folds"] >= 2 and "temperature" in router.report
    assert router.report["mode"] == TAUGHT and router.report["mode_reason"] == summary["mode_reason"]
    p = router.proba(FakeEmbeddings(32).queries(["委託のリスクは？"])[0])
    assert p.shape == (2,) and np.isclose(p.sum(), 1.0)
