"""The curated-draft fix: a new kb/curated file quoting the chosen section that passes kb check and is served
after the re-ingest; anything kb check would reject is refused with the kb left byte for byte as it was."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
import yaml

from bpo_assistant.owners import fixes
from bpo_assistant.owners.drafts import draft_curated, pick_sentences
from bpo_assistant.owners.fixes import FixError, reingest
from conftest import make_settings, write_doc
from test_admin_fixes import _Demo, _Request, _tiny_kb

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REFUSED = "取引先が車で来社する時はどうすればいい？"  # refused by the tiny kb until a curated answer names it


def snapshot(kb: Path) -> dict[str, bytes]:
    return {str(p.relative_to(kb)): p.read_bytes() for p in sorted(kb.rglob("*")) if p.is_file()}


def test_a_draft_on_the_real_kb_quotes_the_section_passes_kb_check_and_is_listed_for_review(kb_copy, tmp_path):
    from bpo_assistant.curated import load_curated
    from bpo_assistant.kbcheck import check_kb
    from bpo_assistant.kbfiles import load_kb_docs, section_sentences
    from bpo_assistant.owners.maintenance import maintenance

    settings = make_settings(tmp_path / "data", kb_copy)
    asked = ["BPOの語源を教えて", "ＢＰＯの語源を教えて", "BPOという言葉の由来は？"]  # the second is the first after NFKC
    draft = draft_curated(settings, "ja", "bpo-overview#definition", asked, "sato", datetime.date(2026, 12, 1))
    path = Path(draft.path)
    assert path.parent == kb_copy / "curated" and path.stem == draft.id == "draft-bpo-overview-definition-ja"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["questions"][:2] == ["BPOの語源を教えて", "BPOという言葉の由来は？"] and len(data["questions"]) == 3
    assert (data["owner"], data["reviewed"], data["status"]) == ("sato", datetime.date(2026, 12, 1), "draft")
    assert path.read_text(encoding="utf-8").startswith("# Draft by sato")
    docs, _ = load_kb_docs(kb_copy)
    section = next(s for s in docs[("ja", "bpo-overview")].sections if s.id == "definition")
    lines = data["answer"].strip().splitlines()
    assert 1 <= len(lines) <= 3 and all(line.endswith("。[1]") for line in lines)
    assert all(line.removesuffix("[1]") in section_sentences(section) for line in lines)  # kb sentences verbatim
    assert data["sources"] == [{"doc": "bpo-overview", "section": "definition", "hash": data["sources"][0]["hash"]}]
    assert check_kb(kb_copy) == []
    (loaded,) = [a for a in load_curated(kb_copy, docs)[0] if a.id == draft.id]
    assert not loaded.stale  # hashes stamped: an edit of the section later marks the draft stale
    rows = [r for r in maintenance(settings) if r.kind == "draft"]
    assert [(r.item, r.owner) for r in rows] == [(draft.id, "sato")]
    again = draft_curated(settings, "ja", "bpo-overview#definition", ["BPOの語源は？"], "suzuki")
    assert again.id == "draft-bpo-overview-definition-2-ja"  # a second draft never overwrites the first


def test_the_sentences_are_those_sharing_the_most_with_the_question_in_reading_order():
    sentences = ["駐車場の利用は総務部に申請します。", "社員証は入館時に提示します。", "来客用の駐車スペースは前日までに予約が必要です。"]
    assert pick_sentences(sentences, ["来客用の駐車スペースの予約は？"], limit=2) == [sentences[0], sentences[2]]
    assert pick_sentences(sentences, ["まったく関係のない話"], limit=1) == [sentences[0]]  # the lead sentence


@pytest.mark.parametrize("label, asked, owner, message", [
    ("office#nope", [REFUSED], "sato", r"unknown section office#nope \(ja\)"),
    ("office#parking", [REFUSED], " ", r"needs an owner"),
    ("office#parking", ["  "], "sato", r"no question to draft"),
    ("office#parking", ["駐車場は(どこ|いつ)？"], "sato", r"alternation group"),
    ("misc#lockers", [REFUSED], "sato", r"needs 3 question phrasings and misc#lockers \(ja\) gives 1"),
])
def test_a_draft_that_cannot_be_written_is_refused_and_the_kb_is_byte_identical(tmp_path, label, asked, owner,
                                                                               message):
    kb = tmp_path / "kb"
    _tiny_kb(kb)
    write_doc(kb, "ja", "misc", {"lockers": "ロッカーの鍵は総務部で受け取ります。"})  # a section with no bank yet
    before = snapshot(kb)
    with pytest.raises(FixError, match=message):
        draft_curated(make_settings(tmp_path / "data", kb), "ja", label, asked, owner)
    assert snapshot(kb) == before


def test_when_kb_check_finds_a_new_problem_the_draft_is_removed_and_the_fix_refused(tmp_path, monkeypatch):
    kb = tmp_path / "kb"
    _tiny_kb(kb)
    before = snapshot(kb)
    real = fixes.check_kb

    def check(kb_dir):  # the check as it is, plus a problem in whatever new curated file it meets
        return real(kb_dir) + [f"{p}:1: broken on purpose" for p in Path(kb_dir, "curated").glob("*.yaml")]

    monkeypatch.setattr(fixes, "check_kb", check)
    with pytest.raises(FixError, match=r"kb check: .*draft-office-parking-ja\.yaml:1: broken on purpose"):
        draft_curated(make_settings(tmp_path / "data", kb), "ja", "office#parking", [REFUSED], "sato")
    assert snapshot(kb) == before and not (kb / "curated").exists()


def test_the_admin_draft_button_turns_a_refused_theme_into_a_served_curated_answer(tmp_path):
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
    mate = "お客様が車で来るときの手配は？"  # refused too; the owner drafts from the other question
    started = time.monotonic()
    assert assistant.ask(REFUSED).refused
    assert assistant.ask(mate).refused
    qlog.flush()
    ids = {i.question: i.id for i in items(settings, statuses=None)}
    picks = {f"q{ids[REFUSED]}": [[ids[REFUSED], REFUSED, "ja"]],  # the queue's picks: a question and its theme
             "t1": [[ids[REFUSED], REFUSED, "ja"], [ids[mate], mate, "ja"]]}
    svc = AdminService(assistant, settings, _Demo("127.0.0.1"))
    refused = svc.add_draft(f"q{ids[REFUSED]}", "office#nope", picks, _Request())
    assert refused.startswith("✗") and "unknown section" in refused and not (kb / "curated").exists()
    out = svc.add_draft(f"q{ids[REFUSED]}", "office#parking", picks, _Request())
    assert "✓ 下書き / draft `draft-office-parking-ja`" in out and "+status: draft" in out
    assert "+owner: localhost" in out and f"+- {mate}" in out  # the theme's question is one of its phrasings
    assert "asked again: 回答 / answered (curated)" in out and "`office#parking`" in out
    answer = assistant.ask(REFUSED)
    assert (answer.refused, answer.kind, answer.sections) == (False, "curated", ("office#parking",))
    assert "来客用の駐車スペースは前日までに予約が必要です。" in answer.text
    assert {i.question: i.status for i in items(settings, statuses=None)} == {REFUSED: "対応済み", mate: "対応済み"}
    print(f"refused → answered (curated draft) in {time.monotonic() - started:.1f}s")
    qlog.close()


def test_triage_resolve_as_curated_writes_the_draft_and_closes_the_question(tmp_path, monkeypatch, capsys):
    from bpo_assistant.cli import main
    from bpo_assistant.owners.triage import items
    from test_triage import log_events

    kb = tmp_path / "kb"
    _tiny_kb(kb)
    settings = make_settings(tmp_path / "data", kb)
    log_events(settings, [(REFUSED, "refusal", True, 0.1, 60)])
    monkeypatch.setenv("BPO_KB_DIR", str(kb))
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    (item,) = items(settings)
    assert main(["triage", "resolve", str(item.id), "--as", "curated:office", "--by", "sato"]) == 2
    assert main(["triage", "resolve", str(item.id), "--as", "curated:office#nope", "--by", "sato"]) == 1
    assert "unknown section office#nope" in capsys.readouterr().err and not (kb / "curated").exists()
    assert main(["triage", "resolve", str(item.id), "--as", "curated:office#parking", "--by", "sato"]) == 0
    out = capsys.readouterr().out
    assert f"+- {REFUSED}" in out and "+owner: sato" in out and "+status: draft" in out
    assert (kb / "curated" / "draft-office-parking-ja.yaml").exists()
    (done,) = items(settings, statuses=None)
    assert (done.status, done.changed_by) == ("対応済み", "sato")


def test_the_cli_draft_takes_the_rest_of_each_chosen_question_s_theme(monkeypatch):
    from bpo_assistant.owners import resolve
    from bpo_assistant.owners.triage import Item, Theme

    def item(i, q, lang="ja"):
        return Item(i, float(i), q, lang, "refusal", True, "gate", 0.1, (), (), None, "未対応", "", "refused")

    parking = Theme(1, "来客の車は？", (item(1, "来客の車は？"), item(2, "お客さんの車は？"),
                                      item(5, "Visitor parking?", "en")))
    other = Theme(3, "社員食堂は？", (item(3, "社員食堂は？"), item(4, "食堂のメニューは？")))
    # the themes as the queue groups them (the clustering has its own tests in test_triage)
    monkeypatch.setattr(resolve, "queue", lambda settings, assistant, statuses: [parking, other])
    assert resolve.theme_mates(None, None, [1]) == [(2, "お客さんの車は？", "ja"), (5, "Visitor parking?", "en")]
    assert resolve.theme_mates(None, None, [9]) == []  # closed or purged: no theme to widen it with
