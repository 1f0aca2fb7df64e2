"""One-click fixes: each lands as a small reviewable change, is refused when kb check would fail, and works."""

from __future__ import annotations

import subprocess
import time

import pytest

from bpo_assistant.owners import kpi
from bpo_assistant.owners.alias import add_alias
from bpo_assistant.owners.fixes import FixError, add_case, add_expected_question, reingest, suite_case
from conftest import make_settings, write_doc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def added_lines(diff: str) -> list[str]:
    return [l for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]


def test_expected_question_is_one_added_line_in_the_right_section(kb_copy, tmp_path):
    settings = make_settings(tmp_path / "data", kb_copy)
    path = kb_copy / "questions" / "ja" / "bpo-overview.yaml"
    before = path.read_text(encoding="utf-8")
    fix = add_expected_question(settings, "ja", "bpo-overview#definition", "BPOってどういう意味の言葉？")
    after = path.read_text(encoding="utf-8")
    (tmp_path / "before.yaml").write_text(before, encoding="utf-8")
    git = subprocess.run(["git", "diff", "--no-index", "--numstat", "--", str(tmp_path / "before.yaml"), str(path)],
                         capture_output=True, text=True)
    assert git.stdout.split()[:2] == ["1", "0"]  # one line added, none changed: a diff a reviewer reads at a glance
    assert added_lines(fix.diff) == ["+    - BPOってどういう意味の言葉？"]
    assert after.startswith("# Expected questions")  # the header comment survives
    from bpo_assistant.bank import parse

    mine = [q for q in parse(after) if q.text == "BPOってどういう意味の言葉？"]
    assert [q.label for q in mine] == ["bpo-overview#definition"]
    from bpo_assistant.kbcheck import check_kb

    assert check_kb(kb_copy) == []


def test_a_question_already_under_another_section_is_refused_and_nothing_changes(kb_copy, tmp_path):
    settings = make_settings(tmp_path / "data", kb_copy)
    path = kb_copy / "questions" / "ja" / "bpo-benefits.yaml"
    before = path.read_bytes()
    with pytest.raises(FixError, match=r"bpo-overview\.yaml:\d+: 'ＢＰＯとは何ですか？' is already listed under "
                                       r"bpo-overview#definition as 'BPOとは何ですか？'"):
        add_expected_question(settings, "ja", f"bpo-benefits#{_first_section(kb_copy, 'bpo-benefits')}",
                              "ＢＰＯとは何ですか？")  # full-width: the same question after NFKC
    assert path.read_bytes() == before


def test_unknown_section_or_a_broken_bank_file_is_refused_untouched(kb_copy, tmp_path):
    settings = make_settings(tmp_path / "data", kb_copy)
    with pytest.raises(FixError, match=r"unknown section bpo-overview#nope \(ja\)"):
        add_expected_question(settings, "ja", "bpo-overview#nope", "新しい質問ですか？")
    path = kb_copy / "questions" / "ja" / "bpo-overview.yaml"
    broken = path.read_text(encoding="utf-8") + "  definition: [unclosed\n"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(FixError, match="cannot be edited safely.*invalid YAML"):
        add_expected_question(settings, "ja", "bpo-overview#definition", "BPOってどういう意味の言葉？")
    assert path.read_text(encoding="utf-8") == broken


def test_glossary_alias_is_one_changed_line_and_the_glossary_finds_it(kb_copy, tmp_path):
    from bpo_assistant.glossary import Glossary
    from bpo_assistant.kbcheck import check_kb

    settings = make_settings(tmp_path / "data", kb_copy)
    path = kb_copy / "glossary.yaml"
    before = path.read_text(encoding="utf-8")
    assert Glossary.load(path).find("外出しの費用は？") == []
    fix = add_alias(settings, "アウトソーシング", "外出し")
    after = path.read_text(encoding="utf-8")
    (tmp_path / "before.yaml").write_text(before, encoding="utf-8")
    git = subprocess.run(["git", "diff", "--no-index", "--numstat", "--", str(tmp_path / "before.yaml"), str(path)],
                         capture_output=True, text=True)
    assert git.stdout.split()[:2] == ["1", "1"]  # the entry's one variants line, nothing else re-dumped
    assert added_lines(fix.diff) == [
        "+  variants: [アウトソーシング, アウトソース, 外部委託, 外注, outsourcing, outsource, 外出し]"]
    assert after.startswith("# Glossary:")  # the header comment survives
    assert [t.term for t in Glossary.load(path).find("外出しの費用は？")] == ["アウトソーシング"]
    assert check_kb(kb_copy) == []
    # an alias YAML would misread unquoted still reads back as typed
    add_alias(settings, "BPO", "BPO: 業務委託")
    assert "BPO: 業務委託" in Glossary.load(path).by_name("BPO").variants


@pytest.mark.parametrize("term, alias, message", [
    ("パソコン", "PC", r"unknown glossary term 'パソコン'"),
    ("BPO", "外注", r"glossary.yaml:\d+: '外注' is already used by another term, 'アウトソーシング'"),
    ("アウトソーシング", "ＯＵＴＳＯＵＲＣＥ", r"already a name of 'アウトソーシング'"),  # full-width, any case
    ("BPO", "  ", r"the alias is empty"),
])
def test_a_glossary_alias_that_cannot_be_added_is_refused_untouched(kb_copy, tmp_path, term, alias, message):
    path = kb_copy / "glossary.yaml"
    before = path.read_bytes()
    with pytest.raises(FixError, match=message):
        add_alias(make_settings(tmp_path / "data", kb_copy), term, alias)
    assert path.read_bytes() == before


def test_suite_case_is_appended_loadable_and_its_id_unique(tmp_path):
    from bpo_assistant.evals.suite import load_suite

    suite = tmp_path / "evals" / "triage.jsonl"
    add_case(suite, suite_case("社員食堂のメニューは？", "ja", "triage-1", refuse=True, note={"question_id": 1}))
    fix = add_case(suite, suite_case("BPOの歴史は？", "ja", "triage-2", refuse=False, doc_ids=["bpo-overview"]))
    assert len(added_lines(fix.diff)) == 1
    cases, problems = load_suite(suite)
    assert not problems
    assert [(c.id, c.expect.refuse, c.expect.doc_ids) for c in cases] == [
        ("triage-1", True, None), ("triage-2", False, ("bpo-overview",))]
    with pytest.raises(FixError, match="triage.jsonl:1: case id 'triage-1' is taken"):
        add_case(suite, suite_case("別の質問", "ja", "triage-1", refuse=True))
    with pytest.raises(FixError, match="needs the document"):
        suite_case("BPOの歴史は？", "ja", "triage-3", refuse=False)
    assert len(suite.read_text(encoding="utf-8").splitlines()) == 2


def _first_section(kb_dir, doc_id: str) -> str:
    import yaml

    data = yaml.safe_load((kb_dir / "questions" / "ja" / f"{doc_id}.yaml").read_text(encoding="utf-8"))
    return next(iter(data["sections"]))


def _tiny_kb(kb):
    write_doc(kb, "ja", "office", {
        "moving": "オフィス移転の際は総務部に三か月前までに届け出ます。移転先の住所は社内ポータルで告知します。",
        "parking": "駐車場の利用は総務部に申請します。来客用の駐車スペースは前日までに予約が必要です。",
    }, title="オフィス")
    write_doc(kb, "ja", "expenses", {
        "deadline": "経費精算の締め日は毎月25日です。締め日を過ぎた申請は翌月扱いになります。",
        "receipt": "領収書は原本を経理部に提出します。電子領収書はシステムにアップロードします。",
    }, title="経費")
    bank = {
        "office": {"moving": ["オフィス移転の手続きは？", "引っ越しの届け出はいつまで？", "移転先はどこで知らせる？"],
                   "parking": ["駐車場を使いたい", "来客用の駐車場は？", "駐車スペースの予約方法は？"]},
        "expenses": {"deadline": ["経費精算の締め日は？", "精算はいつまでに出す？", "締め日を過ぎたらどうなる？"],
                     "receipt": ["領収書はどこに出す？", "電子領収書の扱いは？", "領収書の原本は必要？"]},
    }
    for doc, sections in bank.items():
        lines = [f"doc: {doc}", "lang: ja", "sections:"]
        for sid, qs in sections.items():
            lines += [f"  {sid}:", *[f"    - {q}" for q in qs]]
        path = kb / "questions" / "ja" / f"{doc}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_after_the_fix_and_reingest_the_question_routes_to_the_chosen_section(tmp_path):
    from bpo_assistant.assistant import Assistant

    kb = tmp_path / "kb"
    _tiny_kb(kb)
    settings = make_settings(tmp_path / "data", kb)
    reingest(settings)
    assistant = Assistant.from_settings(settings)
    question = "月末までに出さないといけないものは？"
    qvec = assistant.embedder.queries([question])[0]
    before = assistant.knowledge().section_router.ranked(qvec)
    target = before[1][0]  # the owner picks a section the router did not put first
    add_expected_question(settings, "ja", target, question)
    report = reingest(settings)
    assert report.written
    assert assistant.refresh()
    after = assistant.knowledge().section_router.ranked(qvec)
    assert after[0][0] == target and after[0][0] != before[0][0]


# ---- the admin tab ------------------------------------------------------------------------------------------
class _Request:
    def __init__(self, username=None) -> None:
        self.username = username


class _Demo:
    def __init__(self, host) -> None:
        self.bound_host = host


@pytest.mark.parametrize("auth, user, host, allowed", [
    (False, None, "127.0.0.1", True),  # no login: loopback only, and the tab says so
    (False, None, "0.0.0.0", False),
    (True, "sato", "0.0.0.0", True),  # login: the names in BPO_ADMINS
    (True, "tanaka", "127.0.0.1", False),
    (True, None, "127.0.0.1", False),
])
def test_only_admins_get_the_tab_and_its_handlers(tmp_path, auth, user, host, allowed):
    import gradio as gr

    from bpo_assistant.ui.admin import AdminService, admin_of

    settings = make_settings(tmp_path / "data", auth_file=tmp_path / "users.txt" if auth else None, admins="sato, suzuki")
    ok, _, notice = admin_of(settings, user, host)
    assert ok is allowed
    assert ("127.0.0.1" in notice) is (allowed and not auth)
    svc = AdminService(None, settings, _Demo(host))
    tab, _ = svc.gate(_Request(user))
    assert tab.visible is allowed
    if not allowed:  # the Gradio API reaches the handlers directly: each one refuses on its own
        for call in (lambda r: svc.load(r), lambda r: svc.out_of_scope("q1", {"q1": [[1, "x", "ja"]]}, r),
                     lambda r: svc.add_question("q1", "a#b", {"q1": [[1, "x", "ja"]]}, r),
                     lambda r: svc.add_alias("q1", "BPO", "PC", {"q1": [[1, "x", "ja"]]}, r),
                     lambda r: svc.add_draft("q1", "a#b", {"q1": [[1, "x", "ja"]]}, r),
                     lambda r: svc.maintenance(r)):
            with pytest.raises(gr.Error, match="admin only"):
                call(_Request(user))


def test_the_admin_alias_button_writes_the_line_resolves_and_asks_again(kb_copy, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from bpo_assistant.owners import fixes
    from bpo_assistant.owners.db import RESOLVED
    from bpo_assistant.owners.triage import items
    from bpo_assistant.ui.admin import AdminService
    from test_triage import log_events

    settings = make_settings(tmp_path / "data", kb_copy)
    log_events(settings, [("外出しの費用は？", "refusal", True, 0.1, 30)])
    (item,) = items(settings)
    monkeypatch.setattr(fixes, "reingest", lambda s: SimpleNamespace(seconds=0.1))  # the re-ingest has its own test
    reasked = SimpleNamespace(refresh=lambda: True, ask=lambda q, channel: SimpleNamespace(
        sections=("bpo-vs-outsourcing#outsourcing-scope",), refused=False, kind="extractive", text="…"))
    svc = AdminService(reasked, settings, _Demo("127.0.0.1"))
    picks = {f"q{item.id}": [[item.id, item.question, "ja"]]}
    glossary = kb_copy / "glossary.yaml"
    before = glossary.read_bytes()
    refused = svc.add_alias(f"q{item.id}", "BPO", "外注", picks, _Request())
    assert refused.startswith("✗") and "already used by another term" in refused
    assert glossary.read_bytes() == before and items(settings)[0].status == "未対応"
    done = svc.add_alias(f"q{item.id}", "アウトソーシング", "外出し", picks, _Request())
    assert "+  variants: [アウトソーシング, アウトソース, 外部委託, 外注, outsourcing, outsource, 外出し]" in done
    assert "asked again: 回答 / answered (extractive)" in done
    assert items(settings, statuses=None)[0].status == RESOLVED


def test_the_loop_refused_question_to_queue_to_fix_to_answered(tmp_path):
    """A question the kb cannot place is refused → it is in the queue → the owner adds it to the section the
    router offers → after the re-ingest the same question is answered from that section."""
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.owners.qlog import attach_question_log
    from bpo_assistant.owners.triage import items
    from bpo_assistant.ui.admin import AdminService

    kb = tmp_path / "kb"
    _tiny_kb(kb)
    settings = make_settings(tmp_path / "data", kb)
    reingest(settings)
    assistant = Assistant.from_settings(settings)
    qlog = attach_question_log(assistant, settings, channel="chat")
    question = "マイカー通勤の届け出は？"
    started = time.monotonic()
    assert assistant.ask(question).refused
    qlog.flush()
    svc, admin = AdminService(assistant, settings, _Demo("127.0.0.1")), _Request()
    rows, _, picks, kpis, plot, weeks, reasons = svc.load(admin)
    assert kpis[-1][1:4] == [1, "0%", "100%"]  # one question today, refused
    assert weeks[-1][1:4] == [1, "0%", "100%"] and weeks[-1][0] == kpi.week_of(time.time())
    assert len(reasons) == 1 and reasons[0][0] == weeks[-1][0] and reasons[0][2:] == [1, "100%", "100%"]
    assert set(plot["metric"]) == {"回答率 / answer rate", "拒否率 / refusal rate"}
    (qid,) = [i.id for i in items(settings) if i.question == question]
    assert any(r[4] == question for r in rows) and f"q{qid}" in picks
    offered, texts = svc.sections(f"q{qid}", picks, admin)
    labels = [value for _, value in offered["choices"]]
    assert "office#parking" in labels and "駐車場の利用は総務部に申請します" in texts  # each section's text shown
    out = svc.add_question(f"q{qid}", "office#parking", picks, admin)
    assert "✓" in out and "+    - マイカー通勤の届け出は？" in out
    assert "回答 / answered" in out and "office#parking" in out.split("cited:")[1]
    answer = assistant.ask(question)
    assert not answer.refused and answer.sections[0] == "office#parking"
    assert question not in {i.question for i in items(settings)}  # resolved: off the open queue
    (done,) = [i for i in items(settings, statuses=None) if i.id == qid]
    assert (done.status, done.changed_by) == ("対応済み", "localhost")
    print(f"refused → answered in {time.monotonic() - started:.1f}s")
    qlog.close()


@pytest.mark.parametrize("suite", ["../outside.jsonl", "evals/suites/dev.yaml", "/tmp/x.jsonl"])
def test_a_suite_outside_evals_is_refused_and_nothing_is_written(tmp_path, suite):
    from bpo_assistant.settings import REPO_ROOT
    from bpo_assistant.ui.admin import AdminService

    svc = AdminService(None, make_settings(tmp_path / "data"), _Demo("127.0.0.1"))
    out = svc.add_case("q1", None, suite, True, {"q1": [[1, "社員食堂のメニューは？", "ja"]]}, _Request())
    assert out.startswith("✗") and "evals/" in out
    assert not (REPO_ROOT / "outside.jsonl").exists() and not (REPO_ROOT / "evals/suites/dev.yaml").exists()


def test_kb_add_question_cli_prints_the_diff_or_the_reason(kb_copy, tmp_path, monkeypatch, capsys):
    from bpo_assistant.cli import main

    monkeypatch.setenv("BPO_KB_DIR", str(kb_copy))
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    assert main(["kb", "add-question", "bpo-overview#definition", "BPOってどういう意味の言葉？"]) == 0
    assert "+    - BPOってどういう意味の言葉？" in capsys.readouterr().out
    assert main(["kb", "add-question", "bpo-benefits#" + _first_section(kb_copy, "bpo-benefits"),
                 "BPOってどういう意味の言葉？"]) == 1
    assert "already listed under bpo-overview#definition" in capsys.readouterr().err
    assert main(["kb", "add-question", "bpo-overview", "x"]) == 2
