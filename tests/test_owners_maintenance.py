"""The maintenance list: stale curated answers, reviews past BPO_REVIEW_DAYS and thin bank sections, with owners."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
import yaml

from bpo_assistant.owners.maintenance import maintenance
from conftest import make_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TODAY = date(2026, 12, 1)


def _age(kb, settings) -> None:
    """A curated answer and a document reviewed long ago, a cited section edited since, a bank section cut to 3."""
    for rel in ("curated/bpo-roi-ja.yaml", "en/bpo-vs-bpr.md"):
        path = kb / rel
        path.write_text(re.sub(r"(?m)^reviewed: .*$", "reviewed: 2025-01-10", path.read_text(encoding="utf-8")),
                        encoding="utf-8")
    md = kb / "ja" / "bpo-and-dx.md"
    text = md.read_text(encoding="utf-8")
    md.write_text(text.replace("## BPOがDXを後押しする {#bpo-enables-dx}\n",
                               "## BPOがDXを後押しする {#bpo-enables-dx}\n\n業務の棚卸しも進む。\n", 1), encoding="utf-8")
    bank = kb / "questions" / "en" / "bpo-and-dx.yaml"
    data = yaml.safe_load(bank.read_text(encoding="utf-8"))
    data["sections"]["relationship"] = data["sections"]["relationship"][:3]
    bank.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_a_fresh_kb_needs_nothing(kb_copy, tmp_path):
    assert maintenance(make_settings(tmp_path / "data", kb_copy), today=TODAY) == []


def test_each_kind_of_row_names_the_item_and_its_owner(kb_copy, tmp_path):
    settings = make_settings(tmp_path / "data", kb_copy)
    _age(kb_copy, settings)
    rows = maintenance(settings, today=TODAY)
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r.kind, []).append(r)
    assert [(r.item, r.owner) for r in by_kind["stale"]] == [("bpo-and-dx-ja", "onboarding-team")]
    assert "bpo-and-dx#bpo-enables-dx" in by_kind["stale"][0].detail
    due = {(r.item, r.lang): r for r in by_kind["review-due"]}
    assert set(due) == {("bpo-roi-ja", "ja"), ("bpo-vs-bpr", "en")}
    assert due[("bpo-vs-bpr", "en")].owner  # the document's front-matter owner
    assert due[("bpo-roi-ja", "ja")].detail == "reviewed 690 days ago (limit 180)"
    assert [(r.item, r.lang, r.detail) for r in by_kind["few-questions"]] == [
        ("bpo-and-dx#relationship", "en", "3 expected question(s), at least 5 needed")]
    # the same section `kb check` reports: one count, one rule
    from bpo_assistant.kbcheck import check_kb

    assert any("bpo-and-dx#relationship has 3 expected question(s)" in p for p in check_kb(kb_copy))


def test_review_days_is_the_limit(kb_copy, tmp_path):
    settings = make_settings(tmp_path / "data", kb_copy, review_days=3)
    rows = maintenance(settings, today=TODAY)  # every file of the kb was reviewed 2026-11-26
    assert rows and {r.kind for r in rows} == {"review-due"}
    assert all(r.detail == "reviewed 5 days ago (limit 3)" for r in rows)


def test_cli_prints_json_and_text_and_exits_0(kb_copy, tmp_path, monkeypatch, capsys):
    from bpo_assistant.cli import main

    _age(kb_copy, make_settings(tmp_path / "data", kb_copy))
    monkeypatch.setenv("BPO_KB_DIR", str(kb_copy))
    monkeypatch.setenv("BPO_DATA_DIR", str(tmp_path / "data"))
    assert main(["kb", "maintenance", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["stale"] == 1 and out["counts"]["few-questions"] == 1 and out["exit_code"] == 0
    assert {"kind", "item", "lang", "path", "owner", "reviewed", "detail"} <= set(out["rows"][0])
    assert main(["kb", "maintenance"]) == 0
    text = capsys.readouterr().out
    assert "stale curated answers (1)" in text and "bpo-and-dx-ja [ja]  owner onboarding-team" in text


def test_the_admin_tab_lists_the_same_rows(kb_copy, tmp_path):
    from bpo_assistant.ui.admin import AdminService

    settings = make_settings(tmp_path / "data", kb_copy)
    _age(kb_copy, settings)

    class Loopback:
        bound_host = "127.0.0.1"

    shown = AdminService(None, settings, Loopback()).maintenance(type("Req", (), {"username": None})())
    assert [r[0] for r in shown].count("stale") == 1
    assert ["few-questions", "bpo-and-dx#relationship", "en", "knowledge-team",
            "3 expected question(s), at least 5 needed", "questions/en/bpo-and-dx.yaml"] in shown
