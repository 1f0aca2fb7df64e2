"""The real `bpo-assistant chat` server in a subprocess on a free loopback port, for the API and auth tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bpo_assistant.api.tokens import PREFIX, digest
from bpo_assistant.settings import OFFLINE_ENV, REPO_ROOT
from bpo_assistant.ui import auth

PASSWORD = "correct horse battery"
TOKEN = "bpo_test-token-for-the-api-0123456789abcdef"
TEST_ITERATIONS = 20_000  # a served login takes 600,000 (ui/auth.py); 0.65 s per try would slow every login test


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as an operator stops it; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def write_auth_files(tmp: Path, users=("alice", "bob")) -> tuple[Path, Path]:
    """A login file (PBKDF2 at TEST_ITERATIONS, which server_env lets log in, to keep tests quick) and a tokens
    file (mode 600)."""
    users_file = tmp / "users.txt"
    iterations = TEST_ITERATIONS
    users_file.write_text("".join(auth.make_line(u, PASSWORD, iterations=iterations) + "\n" for u in users))
    tokens_file = tmp / "tokens.txt"
    tokens_file.write_text(f"alice:{PREFIX}{digest(TOKEN)}\n")
    os.chmod(users_file, 0o600)
    os.chmod(tokens_file, 0o600)
    return users_file, tokens_file


def server_env(settings, **bpo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(OFFLINE_ENV)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               BPO_DATA_DIR=str(settings.data_dir), BPO_KB_DIR=str(settings.kb_dir),
               BPO_AUTH_MIN_ITERATIONS=str(TEST_ITERATIONS))
    env.update({f"BPO_{k.upper()}": str(v) for k, v in bpo.items()})
    return env


def start(settings, port: int, log: Path, *args: str, timeout: float = 300, **bpo) -> Server:
    # The timeout allows for a machine shared with other test runs (seen: 120 s to import gradio at load 10).
    cmd = [sys.executable, "-m", "bpo_assistant.cli", "chat", "--port", str(port), *args]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=server_env(settings, **bpo), stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{server.stderr()}")
        try:
            if httpx.get(f"{server.base}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"server not up after {timeout} s:\n{server.stderr()}")


class OtlpCollector:
    """An OTLP/gRPC trace collector in this process on a free loopback port: `with OtlpCollector() as c:` sets
    c.env (the OTEL_EXPORTER_OTLP_* variables to hand a child process) and gathers what it exports in c.requests."""

    def __enter__(self) -> "OtlpCollector":
        import pytest

        grpc = pytest.importorskip("grpc")
        pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
        from concurrent import futures

        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self.requests: list = []
        requests = self.requests

        class Collector(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 - the generated service's name
                requests.append(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_INSECURE": "true"}
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(grace=None)

    def spans(self) -> list:
        return [s for req in self.requests for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
