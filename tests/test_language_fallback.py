"""English questions use kb/en; when only Japanese guidance covers them, the answer says so and quotes it."""

from __future__ import annotations

import pytest
import yaml

from bpo_assistant.assistant import Assistant
from bpo_assistant.phrasebook import FALLBACK_NOTICE
from conftest import make_settings, write_doc
from bpo_assistant.ingest.pipeline import run_ingest


@pytest.fixture(scope="module")
def ja_only_assistant(tmp_path_factory):
    root = tmp_path_factory.mktemp("ja-only")
    kb = root / "kb"
    write_doc(kb, "ja", "contract-types", {
        "mandate-tips": "委任・準委任契約では、SLAを明確に定めておくことが大切です。SLAは、サービス・レベル・アグリーメントの略称です。",
    }, title="BPOの契約形態", topic="contracts")
    write_doc(kb, "en", "weather", {"intro": "This English document is about something else entirely: the weather."},
              title="Weather", topic="overview")
    (kb / "glossary.yaml").write_text(yaml.safe_dump([
        {"term": "SLA", "reading": "エスエルエー", "en": "SLA (service level agreement)", "variants": ["SLA"],
         "definition_ja": "x", "definition_en": "x", "doc": "contract-types", "section": "mandate-tips"},
        {"term": "準委任契約", "reading": "じゅんいにんけいやく", "en": "quasi-mandate contract",
         "variants": ["準委任", "quasi-mandate"], "definition_ja": "x", "definition_en": "x", "doc": "contract-types",
         "section": "mandate-tips"},
    ], allow_unicode=True), encoding="utf-8")
    settings = make_settings(root / "data", kb)
    run_ingest(settings, progress=False)
    return Assistant.from_settings(settings)


def test_english_question_falls_back_to_japanese_sources_with_notice(ja_only_assistant):
    answer = ja_only_assistant.ask("What is an SLA in a quasi-mandate contract?")
    assert not answer.refused, answer.text
    assert answer.lang == "en"
    assert FALLBACK_NOTICE in answer.notice and answer.text.startswith(FALLBACK_NOTICE)
    assert {c.lang for c in answer.citations} == {"ja"}
    assert "SLA" in answer.text
