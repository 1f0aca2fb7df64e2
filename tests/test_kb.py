"""The knowledge base itself: complete, bilingual, sourced, not copied, and `kb check` catches each defect."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bpo_assistant.kbcheck import check_kb
from bpo_assistant.kbfiles import load_kb_docs
from bpo_assistant.settings import REPO_ROOT
from conftest import write_doc

KB = REPO_ROOT / "kb"
SEED_TOOL = REPO_ROOT.parent / "shared" / "tools" / "seed_overlap.py"
TOPIC_DOCS = {"bpo-overview", "bpo-vs-outsourcing", "bpo-vs-ito", "bpo-vs-shared-services", "bpo-vs-bpr",
              "target-operations", "bpo-benefits", "bpo-precautions", "vendor-selection", "contract-types",
              "bpo-and-dx", "first-bpo-checklist"}


def test_real_kb_is_clean():
    assert check_kb(KB) == []


def test_every_topic_exists_in_both_languages():
    docs, errors = load_kb_docs(KB)
    assert not errors
    for lang in ("ja", "en"):
        assert TOPIC_DOCS <= {d for (lg, d) in docs if lg == lang}


def test_at_least_30_curated_answers_in_both_languages():
    files = list((KB / "curated").glob("*.yaml"))
    langs = [yaml.safe_load(p.read_text(encoding="utf-8"))["lang"] for p in files]
    assert len(files) >= 30
    assert langs.count("ja") >= 10 and langs.count("en") >= 10


def test_comparisons_cover_five_concepts_and_contract_types():
    tables = {t["id"]: t for t in yaml.safe_load((KB / "comparisons.yaml").read_text(encoding="utf-8"))["tables"]}
    concepts = {c["term"] for c in tables["concepts"]["columns"]}
    assert {"BPO", "アウトソーシング", "ITO", "シェアードサービス", "BPR"} <= concepts
    assert {c["term"] for c in tables["contracts"]["columns"]} == {"準委任契約", "請負契約"}
    for table in tables.values():
        for row in table["rows"]:
            for cell in row["cells"].values():
                assert cell["ja"] and cell["en"] and cell["doc"] and cell["section"]


def test_fact_coverage_is_complete_in_ja_and_en(real_settings):
    from bpo_assistant.evals.coverage import coverage

    result = coverage(real_settings)
    assert result["ja"] == 1.0 and result["en"] == 1.0, result.get("missing")
    assert result["facts"] >= 60


@pytest.mark.skipif(not SEED_TOOL.exists(), reason="shared seed_overlap tool not present")
def test_kb_does_not_copy_the_source_article():
    out = subprocess.run([sys.executable, str(SEED_TOOL), str(KB)], capture_output=True, text=True)
    assert out.stdout == "" and out.returncode == 0, out.stdout[:2000]


# ---- `kb check` failure modes on small broken fixtures -------------------------------------------

def _mini_kb(tmp_path: Path) -> Path:
    kb = tmp_path / "kb"
    for lang, text in (("ja", "BPOは外部委託の一形態です。"), ("en", "BPO is one form of outsourcing.")):
        write_doc(kb, lang, "bpo-overview", {"definition": text})
    (kb / "glossary.yaml").write_text(yaml.safe_dump([{
        "term": "BPO", "reading": "ビーピーオー", "en": "BPO", "variants": ["BPO"], "definition_ja": "x",
        "definition_en": "x", "doc": "bpo-overview", "section": "definition"}], allow_unicode=True), encoding="utf-8")
    (kb / "comparisons.yaml").write_text("tables: []\n", encoding="utf-8")
    (kb / "curated").mkdir()
    (kb / "curated" / "what-is-bpo-ja.yaml").write_text(yaml.safe_dump({
        "id": "what-is-bpo-ja", "lang": "ja", "topic": "overview",
        "questions": ["BPOとは？", "BPOって何？", "BPOの意味は？"], "answer": "BPOは外部委託の一形態です。[1]",
        "sources": [{"doc": "bpo-overview", "section": "definition"}], "owner": "t", "reviewed": "2026-11-26",
    }, allow_unicode=True), encoding="utf-8")
    return kb


def _fix_hashes(kb: Path) -> None:
    from bpo_assistant.kbcheck import check_curated

    docs, _ = load_kb_docs(kb)
    check_curated(kb, docs, fix_hashes=True)


def test_fixture_kb_is_clean_after_fix_hashes(tmp_path):
    kb = _mini_kb(tmp_path)
    assert any("no source_hash" in p for p in check_kb(kb))
    _fix_hashes(kb)
    assert check_kb(kb) == []


def test_missing_front_matter_field_is_named_with_file_and_line(tmp_path):
    kb = _mini_kb(tmp_path)
    _fix_hashes(kb)
    path = kb / "en" / "bpo-overview.md"
    path.write_text(path.read_text(encoding="utf-8").replace("owner: test\n", ""), encoding="utf-8")
    problems = check_kb(kb)
    assert any(str(path) in p and ":1:" in p and "'owner'" in p for p in problems), problems


def test_invalid_yaml_front_matter_reports_its_line(tmp_path):
    kb = _mini_kb(tmp_path)
    path = kb / "ja" / "bpo-overview.md"
    path.write_text(path.read_text(encoding="utf-8").replace("tags: [t]", "tags: [t"), encoding="utf-8")
    problems = check_kb(kb)
    assert any(str(path) in p and "not valid YAML" in p for p in problems), problems


def test_duplicate_ids_are_reported(tmp_path):
    kb = _mini_kb(tmp_path)
    shutil.copy(kb / "ja" / "bpo-overview.md", kb / "ja" / "copy.md")
    assert any("duplicate id 'bpo-overview'" in p for p in check_kb(kb))


def test_missing_english_twin_and_differing_sections(tmp_path):
    kb = _mini_kb(tmp_path)
    write_doc(kb, "ja", "lonely", {"a": "孤立した文書です。"})
    write_doc(kb, "en", "bpo-overview", {"definition": "BPO is one form of outsourcing.", "extra": "More."})
    problems = check_kb(kb)
    assert any("no English twin" in p and "lonely" in p for p in problems)
    assert any("differ from the Japanese twin" in p for p in problems)


def test_curated_source_that_does_not_resolve(tmp_path):
    kb = _mini_kb(tmp_path)
    path = kb / "curated" / "what-is-bpo-ja.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("section: definition", "section: nowhere"), encoding="utf-8")
    assert any("bpo-overview#nowhere" in p and "does not resolve" in p for p in check_kb(kb))


def test_editing_a_cited_section_names_the_stale_curated_answer(kb_copy):
    """On a copy of the real kb: change a sentence that a curated answer cites; kb check names both."""
    assert check_kb(kb_copy) == []
    data = None
    for path in sorted((kb_copy / "curated").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data["lang"] == "ja":
            break
    doc_id, section_id = data["sources"][0]["doc"], data["sources"][0]["section"]
    md = kb_copy / "ja" / f"{doc_id}.md"
    text = md.read_text(encoding="utf-8")
    heading = next(line for line in text.splitlines() if line.endswith(f"{{#{section_id}}}"))
    md.write_text(text.replace(heading, heading + "\n\nこの文は審査の後で追加されました。"), encoding="utf-8")
    problems = check_kb(kb_copy)
    assert any(path.name in p and "stale" in p and f"{doc_id}#{section_id}" in p for p in problems), problems


def test_kb_check_cli_exit_codes(tmp_path):
    kb = _mini_kb(tmp_path)
    env = {"BPO_KB_DIR": str(kb), "BPO_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "bpo_assistant.cli", "kb", "check", *a],  # noqa: E731
                                    capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert run().returncode == 1
    fixed = run("--fix-hashes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "re-stamped source hashes of 1" in fixed.stdout


def test_curated_sentence_without_a_source_marker_is_reported(tmp_path):
    kb = _mini_kb(tmp_path)
    _fix_hashes(kb)
    path = kb / "curated" / "what-is-bpo-ja.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("形態です。[1]", "形態です。[1] 出典のない文です。"),
                    encoding="utf-8")
    assert any(path.name in p and "no [n] source marker" in p for p in check_kb(kb)), check_kb(kb)


def _bank(kb: Path, lang: str, sections: dict) -> Path:
    from bpo_assistant.bank import dump

    path = kb / "questions" / lang / "bpo-overview.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump("bpo-overview", lang, sections), encoding="utf-8")
    return path


def test_question_bank_problems_are_named_with_file_and_line(tmp_path):
    kb = _mini_kb(tmp_path)
    _fix_hashes(kb)
    ja = _bank(kb, "ja", {"definition": [f"BPOの質問{i}？" for i in range(10)], "nosuch": ["BPOの目的は？"]})
    en = _bank(kb, "en", {"definition": ["What is BPO?", "BPO meaning", "define BPO", "BPO?"]})
    problems = check_kb(kb)
    assert any(f"{ja}:" in p and "unknown section bpo-overview#nosuch" in p for p in problems), problems
    # 4 English questions: below the minimum of 5, named with the file
    assert any(str(en) in p and "has 4 expected question(s); at least 5" in p for p in problems), problems
    _bank(kb, "en", {"definition": ["What is BPO?", "BPO meaning", "define BPO", "BPO?", "what's BPO"]})
    _bank(kb, "ja", {"definition": [f"BPOの質問{i}？" for i in range(10)]})
    assert check_kb(kb) == []


def test_a_question_under_two_sections_is_reported(tmp_path):
    kb = _mini_kb(tmp_path)
    _fix_hashes(kb)
    write_doc(kb, "ja", "bpo-overview", {"definition": "BPOは外部委託の一形態です。", "purpose": "BPOの目的はコア業務への集中です。"})
    write_doc(kb, "en", "bpo-overview", {"definition": "BPO is one form of outsourcing.", "purpose": "BPO frees core work."})
    many = [f"BPOの質問{i}？" for i in range(10)]
    _bank(kb, "ja", {"definition": many + ["BPOって何？"], "purpose": [f"目的{i}？" for i in range(10)] + ["BPOって何？"]})
    problems = check_kb(kb)
    assert any("'BPOって何？' is listed under bpo-overview#purpose and under bpo-overview#definition" in p
               for p in problems), problems
