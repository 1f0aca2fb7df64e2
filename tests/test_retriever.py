"""The LangChain surface of the hybrid retriever (issue 12): `invoke(q, topic=…, lang=…, k=…)` honours each option
(it used to drop them silently), the Documents carry the whole hit (topic, section, scores), callbacks see the run,
and `as_runnable()` takes a dict for chains. The real kb, ingested into real Chroma and BM25 with the hash-seeded
fake embedder: the filters and the metadata are what is tested here, not the ranking."""

from __future__ import annotations

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from bpo_assistant.assistant import Assistant
from conftest import make_settings
from bpo_assistant.ingest.pipeline import run_ingest

QUESTION = "請負契約とは？"


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("retriever-data"), embedder="fake:32")
    run_ingest(settings, progress=False)
    return Assistant.from_settings(settings).kb.retriever


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.started, self.ended = [], []

    def on_retriever_start(self, serialized, query, **kwargs):
        self.started.append(query)

    def on_retriever_end(self, documents, **kwargs):
        self.ended.append(documents)


def test_invoke_honours_topic_lang_and_k_per_call(retriever):
    assert len(retriever.invoke(QUESTION)) == retriever.settings.top_k
    narrowed = retriever.invoke(QUESTION, topic="contracts", k=3)
    assert len(narrowed) == 3 and {d.metadata["topic"] for d in narrowed} == {"contracts"}
    unfiltered_topics = {d.metadata["topic"] for d in retriever.invoke(QUESTION, k=12)}
    assert unfiltered_topics - {"contracts"}  # so the filter above did something
    english = retriever.invoke(QUESTION, lang="en", k=4)
    assert len(english) == 4 and {d.metadata["lang"] for d in english} == {"en"}
    assert {d.metadata["lang"] for d in retriever.invoke(QUESTION)} == {"ja"}


def test_documents_carry_the_topic_the_section_and_every_score(retriever):
    docs = retriever.invoke(QUESTION, k=5)
    hits = retriever.search(QUESTION, k=5)
    assert [d.id for d in docs] == [h.chunk.id for h in hits]
    for rank, (doc, hit) in enumerate(zip(docs, hits), 1):
        m = doc.metadata
        assert doc.page_content == hit.chunk.text and m["chunk_id"] == hit.chunk.id and m["rank"] == rank
        assert (m["doc_id"], m["section_id"], m["section_title"], m["title"], m["topic"], m["ordinal"]) == (
            hit.chunk.doc_id, hit.chunk.section_id, hit.chunk.section_title, hit.chunk.title, hit.chunk.topic,
            hit.chunk.ordinal)
        assert m["section"] == f"{hit.chunk.title} › {hit.chunk.section_title}"
        assert (m["score"], m["dense"], m["keyword"], m["defines"]) == (hit.score, hit.dense, hit.keyword, hit.defines)
    assert retriever.hits(docs) == hits  # a caller going through invoke gets the same hits back


def test_callbacks_see_the_query_and_the_documents(retriever):
    recorder = Recorder()
    docs = retriever.invoke(QUESTION, {"callbacks": [recorder]}, topic="contracts")
    assert recorder.started == [QUESTION] and recorder.ended == [docs]


@pytest.mark.parametrize("options, message", [
    ({"topic": "astrology"}, "unknown topic 'astrology'; known topics: benefits, checklist"),
    ({"lang": "fr"}, "unknown lang 'fr'; the index holds: en, ja"),
    ({"k": 0}, "k must be a positive integer, not 0"),
    ({"k": "3"}, "k must be a positive integer, not '3'"),
])
def test_a_bad_option_is_a_clear_error_not_an_unfiltered_answer(retriever, options, message):
    with pytest.raises(ValueError, match=message):
        retriever.invoke(QUESTION, **options)


def test_an_unknown_option_is_refused_by_name(retriever):
    with pytest.raises(TypeError, match="unknown retriever options: topics"):
        retriever.invoke(QUESTION, topics="contracts")


def test_as_runnable_takes_a_dict_or_a_string_and_nests_the_retriever_run(retriever):
    runnable = retriever.as_runnable()
    docs = runnable.invoke({"question": QUESTION, "topic": "contracts", "k": 2, "lang": None})
    assert len(docs) == 2 and {d.metadata["topic"] for d in docs} == {"contracts"}
    assert [d.id for d in runnable.invoke(QUESTION)] == [d.id for d in retriever.invoke(QUESTION)]
    recorder = Recorder()
    runnable.invoke({"query": QUESTION}, {"callbacks": [recorder]})
    assert recorder.started == [QUESTION]
    chained = (runnable | (lambda docs: [d.metadata["section"] for d in docs])).invoke({"query": QUESTION, "k": 1})
    assert len(chained) == 1 and " › " in chained[0]
    with pytest.raises(ValueError, match="non-empty 'query'"):
        runnable.invoke({"topic": "contracts"})


def test_the_assistant_retrieves_through_invoke_so_a_tracer_sees_the_production_query(assistant):  # the real kb
    """Assistant.ask goes through the retriever's .invoke: LangChain's tracing context (what LangSmith and any
    callback-based tracer hook into) records a retriever run with the question's search query and the documents
    the answer's first citation comes from (later ones may be sibling sections the composer adds)."""
    from langchain_core.tracers.context import collect_runs

    with collect_runs() as runs:
        answer = assistant.ask(QUESTION)
    retrievals = [r for r in runs.traced_runs if r.run_type == "retriever"]
    # the cleaned search query (full-width ？ folded), the one the answer reports
    assert [r.inputs["query"] for r in retrievals] == [answer.standalone_query]
    returned = {(d.metadata["doc_id"], d.metadata["section_id"]) for d in retrievals[0].outputs["documents"]}
    assert answer.citations and (answer.citations[0].doc_id, answer.citations[0].section_id) in returned
