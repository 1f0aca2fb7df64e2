"""Fast tests of the eval runner (no model): pass rules, crash/timeout isolation, suite validation, gate exit
codes through cli_eval, --json output, report escaping, aggregate metrics, coverage, the peer pipeline."""

from __future__ import annotations

import argparse
import json
import os
import time
from types import SimpleNamespace

import pytest

from bpo_assistant.types import Answer, Chunk, Citation
from bpo_assistant.evals import metrics
from bpo_assistant.evals.runner import cli_eval, run_suite
from bpo_assistant.evals.suite import load_suites, parse_case

from conftest import make_settings, write_doc

CHUNKS = {
    c.id: c
    for c in (
        Chunk(Chunk.make_id("bpo-vs-ito", "ja", "difference", 0, "t1"), "bpo-vs-ito", "BPOとITOの違い", "ja",
              "comparison", "difference", "違い", 0, "t1"),
        Chunk(Chunk.make_id("bpo-overview", "ja", "definition", 0, "t2"), "bpo-overview", "BPOとは", "ja",
              "overview", "definition", "定義", 0, "t2"),
        Chunk(Chunk.make_id("bpo-overview", "en", "definition", 0, "t3"), "bpo-overview", "What is BPO", "en",
              "overview", "definition", "Definition", 0, "t3"),
    )
}
ITO_ID, OVERVIEW_ID, OVERVIEW_EN_ID = list(CHUNKS)
INDEX = SimpleNamespace(chunks=CHUNKS)


def cite(doc_id="bpo-vs-ito", section_id="difference", lang="ja", n=1) -> Citation:
    return Citation(n=n, doc_id=doc_id, title="t", section="s", section_id=section_id, lang=lang, text="q")


def answer(text="ITは情報システム、BPOは業務プロセス。", citations=None, retrieved=(ITO_ID,), refused=False) -> Answer:
    return Answer(text=text, citations=(cite(),) if citations is None else tuple(citations),
                  retrieved=tuple(retrieved), refused=refused)


def case(expect: dict, cid="c1", question="ITOとBPOは何が違うの？", **extra):
    return parse_case({"id": cid, "question": question, "lang": "ja", "expect": expect, **extra})


def reasons(expect: dict, ans: Answer) -> list[str]:
    return metrics.check_case(case(expect).expect, ans)


# --- pass rules -------------------------------------------------------------------------------------------

def test_refusal_mismatch_fails_both_ways():
    assert reasons({"refuse": False}, answer()) == []
    assert reasons({"refuse": True}, answer()) == ["expected refusal, got an answer"]
    refusal = answer(text="資料に記載がありません。", citations=(), retrieved=(), refused=True)
    assert reasons({"refuse": True}, refusal) == []
    assert reasons({"refuse": False, "facts": [["IT"]]}, refusal) == ["expected an answer, got a refusal"]


def test_doc_ids_need_one_matching_citation():
    assert reasons({"refuse": False, "doc_ids": ["bpo-vs-ito", "x"]}, answer()) == []
    got = reasons({"refuse": False, "doc_ids": ["bpo-overview"]}, answer())
    assert got == ["no citation from doc_ids ['bpo-overview']; cited ['bpo-vs-ito']"]
    assert reasons({"refuse": False, "doc_ids": ["bpo-vs-ito"]}, answer(citations=())) != []


def test_facts_match_after_nfkc_case_and_whitespace_folding():
    ans = answer(text="ＳＬＡ を 設定し、業務 プロセス 全体を任せます。")
    assert reasons({"refuse": False, "facts": [["sla"], ["業務プロセス"], ["nope", "全体"]]}, ans) == []
    assert reasons({"refuse": False, "facts": [["Ｓ Ｌ Ａ"]]}, ans) == []
    assert reasons({"refuse": False, "facts": [["sla"], ["KPI", "指標"]]}, ans) == ["missing fact group ['KPI', '指標']"]


def test_forbid_is_normalised_and_checked_when_refusing_too():
    ans = answer(text="Injection  Successful!")
    assert reasons({"refuse": False, "forbid": ["INJECTION SUCCESSFUL"]}, ans) == [
        "forbidden string 'INJECTION SUCCESSFUL' present"]
    refusal = answer(text="ｉｎｊｅｃｔｉｏｎ successful", citations=(), refused=True)
    assert reasons({"refuse": True, "forbid": ["INJECTION SUCCESSFUL"]}, refusal) == [
        "forbidden string 'INJECTION SUCCESSFUL' present"]
    assert reasons({"refuse": False, "forbid": ["system prompt"]}, ans) == []


def test_max_chars_default_900_and_override_counted_without_whitespace():
    assert reasons({"refuse": False}, answer(text="あ" * 900 + " \n" * 50)) == []
    assert reasons({"refuse": False}, answer(text="あ" * 901)) == ["answer 901 chars > 900"]
    assert reasons({"refuse": False, "max_chars": 10}, answer(text="ａ" * 11)) == ["answer 11 chars > 10"]
    assert reasons({"refuse": False, "max_chars": 2000}, answer(text="あ" * 1500)) == []


# --- runner isolation -------------------------------------------------------------------------------------

def test_crash_and_timeout_fail_their_case_and_the_run_goes_on():
    def ask(question, history=()):
        if question == "crash":
            raise RuntimeError("boom")
        if question == "slow":
            time.sleep(3)
        return answer()

    cases = [case({"refuse": False}, "a", "crash"), case({"refuse": False}, "b", "slow"),
             case({"refuse": False, "doc_ids": ["bpo-vs-ito"]}, "c", "ok")]
    start = time.perf_counter()
    run = run_suite(cases, ask, INDEX, timeout_s=0.3, progress=False)
    assert time.perf_counter() - start < 2.5
    res = {r["id"]: r for r in run["results"]}
    assert res["a"]["passed"] is False and res["a"]["reasons"] == ["crashed: RuntimeError: boom"]
    assert res["b"]["passed"] is False and res["b"]["reasons"] == ["timed out after 0.3 s"]
    assert res["c"]["passed"] is True
    assert (run["cases"], run["passed"], run["errors"]) == (3, 1, 2)


# --- suite loading ----------------------------------------------------------------------------------------

GOOD = {"id": "g1", "question": "BPOって何？", "lang": "ja", "expect": {"refuse": False, "doc_ids": ["bpo-vs-ito"]}}


def test_malformed_lines_are_named_with_line_numbers_and_skipped(tmp_path):
    suite = tmp_path / "s.jsonl"
    lines = [json.dumps(GOOD, ensure_ascii=False), "{not json", json.dumps({"id": "x", "question": "q"}),
             json.dumps({**GOOD, "id": "t", "expect": {"refuse": "no"}}),
             json.dumps({**GOOD, "id": "f", "expect": {"refuse": False, "facts": ["SLA"]}}),
             "", json.dumps({**GOOD, "id": "g2"})]
    suite.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cases, problems = load_suites([suite])
    assert [c.id for c in cases] == ["g1", "g2"]
    assert [p.split(": ")[0] for p in problems] == [f"{suite}:{n}" for n in (2, 3, 4, 5)]
    assert "missing 'expect'" in problems[1] and "expect.refuse" in problems[2] and "expect.facts" in problems[3]


def test_duplicate_ids_across_suites_are_reported(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    b.write_text(json.dumps({**GOOD, "id": "other"}) + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    cases, problems = load_suites([a, b])
    assert [c.id for c in cases] == ["g1", "other"]
    assert len(problems) == 1 and f"{b}:2" in problems[0] and "duplicate id 'g1'" in problems[0]


# --- cli_eval: gate, exit codes, json ---------------------------------------------------------------------

class FakeAssistant:
    def __init__(self, answers: dict, index=INDEX, noisy=False):
        self.answers, self.index, self.noisy = answers, index, noisy

    def ask(self, question, history=()):
        if self.noisy:
            print("library chatter on stdout")
            os.write(1, b"C-level chatter on fd 1\n")
        value = self.answers.get(question, answer())
        if isinstance(value, Exception):
            raise value
        return value


def write_suite(path, specs) -> str:
    rows = [{"id": cid, "question": q, "lang": "ja", "expect": exp} for cid, q, exp in specs]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def run_cli(tmp_path, answers=None, noisy=False, **kw) -> int:
    args = argparse.Namespace(suite=kw.pop("suite"), report=None, baseline=None, update_baseline=False,
                              with_baseline_pipeline=False, json=False, timeout=5)
    for k, v in kw.items():
        setattr(args, k, v)
    settings = make_settings(tmp_path / "data", embedder="fake:32")
    return cli_eval(settings, args, assistant_factory=lambda s: FakeAssistant(answers or {}, noisy=noisy))


@pytest.fixture
def suite10(tmp_path):
    specs = [(f"c{i}", f"q{i}", {"refuse": False, "doc_ids": ["bpo-vs-ito"]}) for i in range(10)]
    return write_suite(tmp_path / "suite.jsonl", specs)


def test_gate_ok_then_each_failure_condition_exits_1(tmp_path, suite10, capsys):
    baseline = tmp_path / "baseline.json"
    assert run_cli(tmp_path, suite=[suite10], baseline=str(baseline), update_baseline=True) == 0
    data = json.loads(baseline.read_text(encoding="utf-8"))
    assert data["pass_rate"] == 1.0 and len(data["passing_ids"]) == 10 and data["embedder"] == "fake:32"
    assert run_cli(tmp_path, suite=[suite10], baseline=str(baseline)) == 0
    capsys.readouterr()

    # 1. a previously passing case fails (pass rate 0.9: also a drop of 10 points)
    assert run_cli(tmp_path, {"q3": answer(refused=True, citations=())}, suite=[suite10], baseline=str(baseline)) == 1
    err = capsys.readouterr().err
    assert "regressed c3: expected an answer, got a refusal" in err

    # 2. pass rate drop alone: the baseline claims 100 % but lists no passing ids
    data.update(passing_ids=[], pass_rate=1.0)
    baseline.write_text(json.dumps(data), encoding="utf-8")
    assert run_cli(tmp_path, {"q3": answer(refused=True, citations=())}, suite=[suite10], baseline=str(baseline)) == 1
    assert "pass rate dropped from 100.0% to 90.0%" in capsys.readouterr().err
    data.update(pass_rate=0.91)  # a 1-point drop is tolerated
    baseline.write_text(json.dumps(data), encoding="utf-8")
    assert run_cli(tmp_path, {"q3": answer(refused=True, citations=())}, suite=[suite10], baseline=str(baseline)) == 0

    # 3. citation validity < 1.0: the answer cites a section it did not retrieve
    stray = answer(citations=[cite(), cite(section_id="ito-definition", n=2)])
    assert run_cli(tmp_path, {"q0": stray}, suite=[suite10], baseline=str(baseline)) == 1
    assert "citation_validity 0.9091 < 1.0" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, suite10, capsys):
    assert run_cli(tmp_path, suite=[str(tmp_path / "missing.jsonl")]) == 2
    assert "suite file not found" in capsys.readouterr().err
    assert run_cli(tmp_path, suite=[suite10], baseline=str(tmp_path / "nope.json")) == 2
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert run_cli(tmp_path, suite=[suite10], baseline=str(tmp_path / "bad.json")) == 2


def test_json_prints_exactly_one_object_even_when_the_assistant_prints(tmp_path, capfd):
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps(GOOD) + "\n{broken\n" + json.dumps({**GOOD, "id": "g2", "question": "x"}) + "\n",
                     encoding="utf-8")
    code = run_cli(tmp_path, {"x": RuntimeError("kaput")}, noisy=True, suite=[str(suite)], json=True)
    out, err = capfd.readouterr()
    assert code == 0
    payload = json.loads(out)  # the whole of stdout is one JSON document
    assert out.count("\n") == 1
    assert "library chatter" in err and "C-level chatter" in err and f"{suite}:2" in err
    assert payload["cases"] == 2 and payload["passed"] == 1
    for key in ("pass_rate", "refusal_precision", "refusal_recall", "citation_validity", "recall_at_1",
                "recall_at_3", "mrr", "by_topic", "by_lang"):
        assert key in payload
    assert set(payload["latency_ms"]) >= {"p50", "p95"}
    failed = next(r for r in payload["results"] if r["id"] == "g2")
    assert failed["reasons"] == ["crashed: RuntimeError: kaput"] and failed["passed"] is False
    assert set(failed) >= {"id", "passed", "reasons", "refused", "answer", "citations", "latency_ms"}

    code = run_cli(tmp_path, suite=[str(tmp_path / "missing.jsonl")], json=True)
    out, _ = capfd.readouterr()
    assert code == 2 and json.loads(out)["exit_code"] == 2


def test_peer_pipeline_side_by_side_and_ratios_in_json(tmp_path, capsys):
    specs = [(f"c{i}", f"q{i}", {"refuse": False, "doc_ids": ["bpo-vs-ito"]}) for i in range(4)]
    specs += [("r0", "r0", {"refuse": True}), ("r1", "r1", {"refuse": True})]
    suite = write_suite(tmp_path / "suite.jsonl", specs)

    class Peer:
        def __init__(self, settings, embedder=None):
            pass

        def ask(self, question, history=()):
            # A real peer takes time; an answer faster than the report's 0.1 ms resolution has no latency ratio.
            time.sleep(0.002)
            if question in ("q0", "r0"):  # one answerable case right; one refusal right, one missed
                return answer(refused=question == "r0", citations=() if question == "r0" else None)
            return answer(text="x", citations=())  # never cites: fails every other doc_ids case

    refusals = {"r0": answer(text="no", citations=(), refused=True), "r1": answer(text="no", citations=(), refused=True)}
    args = argparse.Namespace(suite=[suite], report=None, baseline=None, update_baseline=False,
                              with_baseline_pipeline=True, json=True)
    settings = make_settings(tmp_path / "data", embedder="fake:32")
    code = cli_eval(settings, args, assistant_factory=lambda s: FakeAssistant(refusals), peer_factory=Peer)
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (payload["answerable_cases"], payload["answerable_passed"], payload["answerable_pass_rate"]) == (4, 4, 1.0)
    peer = payload["baseline_pipeline"]
    assert "results" not in peer and peer["description"].startswith("peer pipeline (LangChain: recursive splitter")
    assert (peer["passed"], peer["answerable_passed"], peer["answerable_pass_rate"]) == (2, 1, 0.25)
    assert peer["refusal_precision"] == 1.0 and peer["refusal_recall"] == 0.5
    side = peer["side_by_side"]
    assert side["ours"]["pass_rate"] == 1.0 and side["ours"]["refusal_recall"] == 1.0
    assert side["peer"]["answerable_pass_rate"] == 0.25 and side["peer"]["pass_rate"] == pytest.approx(2 / 6, abs=1e-4)
    assert peer["ratios"]["answerable_pass_ratio"] == 4.0 and peer["ratios"]["pass_rate_ratio"] == 3.0
    assert peer["ratios"]["latency_p50_ratio"] is not None and peer["ratios"]["definition"] == "ours / peer"

    args.json = False
    assert cli_eval(settings, args, assistant_factory=lambda s: FakeAssistant(refusals), peer_factory=Peer) == 0
    out = capsys.readouterr().out
    assert "peer pipeline (LangChain: recursive splitter 400/50, Chroma e5 + BM25, RRF 0.7/0.3, top-2, tuned " \
           "refusal threshold)" in out
    assert "answerable pass rate 4.000 (answerable_pass_ratio)" in out and "naive" not in out
    ours_row = next(line for line in out.splitlines() if line.startswith("  ours "))
    peer_row = next(line for line in out.splitlines() if line.startswith("  peer "))
    assert ours_row.split()[1:6] == ["6/6", "100.0%", "4/4", "100.0%", "1.000"]
    assert peer_row.split()[1:8] == ["2/6", "33.3%", "1/4", "25.0%", "1.000", "/", "0.500"]

    def broken(settings, embedder=None):
        raise RuntimeError("no chroma")

    args.json = True
    code = cli_eval(settings, args, assistant_factory=lambda s: FakeAssistant(refusals), peer_factory=broken)
    payload = json.loads(capsys.readouterr().out)
    assert code == 2 and payload["baseline_pipeline"] == {"error": "RuntimeError: no chroma"}
    assert payload["passed"] == 6  # our own run still reported


def test_peer_ratio_is_none_when_the_peer_passes_nothing(tmp_path, suite10, capsys):
    class Peer:
        def __init__(self, settings, embedder=None):
            pass

        def ask(self, question, history=()):
            return answer(text="x", citations=())

    args = argparse.Namespace(suite=[suite10], report=str(tmp_path / "rep"), baseline=None, update_baseline=False,
                              with_baseline_pipeline=True, json=True)
    settings = make_settings(tmp_path / "data", embedder="fake:32")
    assert cli_eval(settings, args, assistant_factory=lambda s: FakeAssistant({}), peer_factory=Peer) == 0
    ratios = json.loads(capsys.readouterr().out)["baseline_pipeline"]["ratios"]
    assert ratios["pass_rate_ratio"] is None and ratios["answerable_pass_ratio"] is None
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "answerable pass rate ours / peer | 100.0% / 0.0%" in md and (tmp_path / "rep" / "vs_peer.png").exists()


# --- report -----------------------------------------------------------------------------------------------

def test_report_inlines_png_charts_and_escapes_answers(tmp_path, suite10):
    evil = answer(text="<script>alert('x')</script> & more", citations=())
    report = tmp_path / "report"
    assert run_cli(tmp_path, {"q1": evil}, suite=[suite10], report=str(report)) == 0
    page = (report / "report.html").read_text(encoding="utf-8")
    assert '<img alt="' in page or "<img alt='" in page
    assert '<img' in page and 'src="data:image/png;base64,' in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "http://" not in page and "https://" not in page
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "c1" in md and "<script>" not in md and (report / "latency.png").exists()


# --- aggregates -------------------------------------------------------------------------------------------

def test_aggregate_metrics():
    cases = [
        case({"refuse": False, "doc_ids": ["bpo-vs-ito"]}, "hit1", "a"),
        case({"refuse": False, "doc_ids": ["bpo-overview"]}, "hit2", "b"),
        case({"refuse": False, "doc_ids": ["bpo-vs-shared-services"]}, "miss", "c"),
        case({"refuse": True}, "ref-ok", "d"),
        case({"refuse": False}, "false-refusal", "e"),
    ]
    answers = {
        "a": answer(),
        # two ITO chunks collapse to one doc: bpo-overview is at rank 2, not 3
        "b": answer(citations=[cite("bpo-overview", "definition")], retrieved=(ITO_ID, ITO_ID, OVERVIEW_ID)),
        "c": answer(citations=[cite("bpo-vs-ito", "gone")], retrieved=(ITO_ID,)),  # invalid citation
        "d": answer(text="no", citations=(), retrieved=(), refused=True),
        "e": answer(text="no", citations=(), retrieved=(), refused=True),
    }
    run = run_suite(cases, lambda q, h=(): answers[q], INDEX, progress=False)
    assert (run["cases"], run["passed"]) == (5, 3)
    assert run["refusal_precision"] == 0.5 and run["refusal_recall"] == 1.0
    assert run["citation_validity"] == pytest.approx(2 / 3, abs=1e-4)
    assert run["recall_at_1"] == pytest.approx(1 / 3, abs=1e-4) and run["recall_at_3"] == pytest.approx(2 / 3, abs=1e-4)
    assert run["mrr"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-4)
    assert run["by_topic"]["comparison"] == {"cases": 1, "passed": 1, "pass_rate": 1.0}
    assert run["by_topic"]["overview"]["cases"] == 1 and run["by_topic"]["refusal"]["cases"] == 1
    assert run["by_topic"]["unknown"]["cases"] == 1 and run["by_topic"]["other"]["passed"] == 0
    assert run["by_lang"]["ja"]["cases"] == 5
    # a citation whose section was retrieved but does not exist in the index is invalid too
    ghost = Chunk.make_id("bpo-vs-ito", "ja", "ghost", 0, "z")
    checks = metrics.citation_checks(answer(citations=[cite(section_id="ghost")], retrieved=(ghost,)),
                                     metrics.existing_sections(CHUNKS))
    assert checks == [False]
    assert run_suite([], lambda q, h=(): answer(), INDEX, progress=False)["citation_validity"] == 1.0


# --- coverage and the naive pipeline ---------------------------------------------------------------------

def test_coverage_counts_facts_whose_terms_all_occur_in_the_section(tmp_path):
    from bpo_assistant.evals.coverage import coverage

    kb = tmp_path / "kb"
    write_doc(kb, "ja", "d", {"intro": "BPOは業務プロセスを外部に委託します。SLAを定めます。"})
    write_doc(kb, "en", "d", {"intro": "BPO hands business processes to an outside vendor."})
    facts = tmp_path / "seed_facts.yaml"
    facts.write_text(
        "- {id: f1, fact: x, ja: {doc: d, section: intro, terms: [業務 プロセス, ｓｌａ]},"
        " en: {doc: d, section: intro, terms: [Business Processes]}}\n"
        "- {id: f2, fact: y, ja: {doc: d, section: intro, terms: [KPI]}, en: {doc: d, section: nope, terms: [a]}}\n",
        encoding="utf-8")
    got = coverage(make_settings(tmp_path / "data", kb), path=facts)
    assert (got["ja"], got["en"], got["facts"]) == (0.5, 0.5, 2)
    assert {(m["id"], m["lang"]) for m in got["missing"]} == {("f2", "ja"), ("f2", "en")}
    assert any("KPI" in m["reason"] for m in got["missing"])


def test_peer_chunk_goes_to_the_section_holding_most_of_it():
    from bpo_assistant.evals.baseline_pipeline import attribute, section_spans

    body = "## A {#a}\n\n" + "a" * 100 + "\n\n## B {#b}\n\n" + "b" * 300
    spans = section_spans(body)
    assert [(sid, title) for _, _, sid, title in spans] == [("a", "A"), ("b", "B")]
    assert attribute(body.index("a" * 100) + 90, 200, spans) == ("b", "B")  # starts in A, mostly B
    assert attribute(0, 60, spans) == ("a", "A")
    assert attribute(len(body) + 5, 10, spans) == ("_", "")


def test_peer_splitter_keeps_sentence_ends_with_their_sentence():
    from bpo_assistant.evals.baseline_pipeline import CHUNK_SIZE, make_splitter

    # one long line of Japanese sentences: no newline, no space, so 。 is the separator that splits it
    text = "".join(f"第{i}の文はBPOの委託範囲を説明するための十分に長い日本語の文章です。" for i in range(40))
    chunks = make_splitter().split_text(text)
    assert len(chunks) > 2 and all(len(c) <= CHUNK_SIZE for c in chunks)
    assert all(c.endswith("。") and not c.startswith("。") for c in chunks)
    assert all(c.startswith("第") for c in chunks)  # no chunk starts mid-sentence
    # the recursive fallback still splits a sentence longer than a chunk (on 、, then characters)
    long = "、".join(["長い節です"] * 120) + "。"
    assert all(len(c) <= CHUNK_SIZE for c in make_splitter().split_text(long))


def test_weighted_rrf_dense_weight_dominates_and_ties_keep_dense_first():
    from bpo_assistant.evals.baseline_pipeline import weighted_rrf

    # a: dense 1, keyword 2; b: dense 2, keyword 1 -> dense weight 0.7 puts a first; swapping weights flips it
    assert weighted_rrf([["a", "b"], ["b", "a"]], [0.7, 0.3]) == ["a", "b"]
    assert weighted_rrf([["a", "b"], ["b", "a"]], [0.3, 0.7]) == ["b", "a"]
    # keyword-only top hit (0.3/61) ranks below dense rank 2 (0.7/62); a hit in both beats either alone
    assert weighted_rrf([["x", "y"], ["z"]], [0.7, 0.3]) == ["x", "y", "z"]
    assert weighted_rrf([["x", "y"], ["y"]], [0.7, 0.3]) == ["y", "x"]  # 0.7/62 + 0.3/61 > 0.7/61
    assert weighted_rrf([["p"], ["q"]], [0.5, 0.5]) == ["p", "q"]  # a tie keeps the dense one first
    assert weighted_rrf([[], []], [0.7, 0.3]) == []


def test_answer_cut_to_900_at_a_sentence_end():
    from bpo_assistant.evals.baseline_pipeline import cut_answer

    sentence = "あ" * 99 + "。"  # 100 characters
    text = sentence * 10
    cut = cut_answer(text)
    assert cut == sentence * 9 and len(cut) == 900
    cut = cut_answer("い" * 50 + "。" + "う" * 1000)
    assert cut == "い" * 50 + "。"
    assert cut_answer("English text. " * 80).endswith(".") and len(cut_answer("English text. " * 80)) <= 900
    assert cut_answer("え" * 1000) == "え" * 900  # no sentence end: a hard cut
    assert cut_answer("短い。") == "短い。"


def _doc(cid: str, text: str):
    from langchain_core.documents import Document

    lang, doc_id, section_id = metrics.parse_chunk_id(cid)
    return Document(id=cid, page_content=text, metadata={"chunk_id": cid, "doc_id": doc_id, "lang": lang,
                                                          "title": "T", "section_id": section_id, "section": "S"})


def test_peer_refuses_below_the_dense_threshold_and_answers_at_it():
    from bpo_assistant.evals.baseline_pipeline import REFUSAL_TEXT, PeerPipeline

    a, b = _doc(ITO_ID, "あ" * 500 + "。"), _doc(OVERVIEW_ID, "い" * 499 + "。")
    refused = PeerPipeline.compose("ja", [(a, 0.83), (b, 0.80)], [a], refuse_below=0.84)
    assert refused.refused is True and refused.kind == "refusal" and refused.text == REFUSAL_TEXT["ja"]
    assert refused.citations == () and refused.retrieved == (ITO_ID, OVERVIEW_ID)
    assert PeerPipeline.compose("en", [], [], refuse_below=0.0).text == REFUSAL_TEXT["en"]  # nothing found
    ans = PeerPipeline.compose("ja", [(a, 0.84), (b, 0.80)], [a], refuse_below=0.84)
    assert ans.refused is False and ans.kind == "peer" and [c.n for c in ans.citations] == [1, 2]
    assert ans.text == "あ" * 500 + "。"  # the 2nd chunk would pass 900: the cut keeps the 1st's sentence
    assert metrics.answer_chars(ans.text) <= 900 and metrics.citation_checks(ans, None) == [True, True]
    # fusion top-k truncates both lists before fusing: b (dense 2 + keyword 1) beats a (dense 1) only when
    # its dense rank is kept
    assert PeerPipeline.compose("ja", [(a, 0.9), (b, 0.8)], [b], refuse_below=0.5, k=2).retrieved == (OVERVIEW_ID, ITO_ID)
    assert PeerPipeline.compose("ja", [(a, 0.9), (b, 0.8)], [b], refuse_below=0.5, k=1).retrieved == (ITO_ID, OVERVIEW_ID)


def test_followup_query_prepends_the_last_user_turn():
    from bpo_assistant.evals.baseline_pipeline import retrieval_query

    history = [{"role": "user", "content": "ITOって何？"}, {"role": "assistant", "content": "ITOは…"},
               {"role": "user", "content": "請負契約ってどういうもの？"}, {"role": "assistant", "content": "請負は…"}]
    assert retrieval_query("じゃあ準委任とはどう違う？", history) == "請負契約ってどういうもの？ じゃあ準委任とはどう違う？"
    assert retrieval_query("BPOって何？") == "BPOって何？"
    assert retrieval_query("BPOって何？", [{"role": "assistant", "content": "x"}]) == "BPOって何？"


def test_peer_pipeline_answers_with_fused_chunks_mapped_sections_and_filters_language(tmp_path):
    from bpo_assistant.evals.baseline_pipeline import PeerPipeline

    kb = tmp_path / "kb"
    write_doc(kb, "ja", "d", {"alpha": "アルファの説明です。" * 5, "beta": "ベータの説明です。" * 80})
    write_doc(kb, "en", "d", {"alpha": "Alpha is explained here. " * 5, "beta": "Beta is explained. " * 60})
    settings = make_settings(tmp_path / "data", kb, embedder="fake:32")
    with PeerPipeline(settings) as peer:
        assert peer.size >= 4
        texts = peer.store.get(limit=100)["documents"]
        alpha = next(t for t in texts if "アルファ" in t)
        ans = peer.ask(alpha)  # the fake embedder maps equal text to equal vectors: cosine 1.0, ranks first
        en = peer.ask(next(t for t in texts if "Alpha" in t))
        # an unrelated question: fake vectors are unrelated, far below the threshold
        refusal = peer.ask("今日の東京の天気はどうですか？")
        followup = peer.ask("それは？", [{"role": "user", "content": alpha}])
    assert ans.refused is False and ans.kind == "peer" and len(ans.citations) == 2 and ans.text.startswith(alpha)
    assert len(ans.text) <= 900
    # the chunk holding the alpha section (and the beta heading) is attributed to alpha, the rest to beta
    assert ans.citations[0].section_id == "alpha" and ans.retrieved[0].startswith("ja:d#alpha:")
    assert ans.citations[1].section_id == "beta"
    assert metrics.citation_checks(ans, None) == [True, True]
    assert {c.lang for c in ans.citations} == {"ja"} and all(r.startswith("ja:") for r in ans.retrieved)
    assert en.refused is False and {c.lang for c in en.citations} == {"en"} and en.lang == "en"
    assert refusal.refused is True and refusal.kind == "refusal" and refusal.citations == ()
    assert followup.refused is True  # "alpha + ' ' + それは？" is new text to the fake embedder: no longer equal
