"""Issue 13 item 11: failed logins back off per user and per address (logged), the chat refuses to bind beyond
loopback without a login, and the API's tokens file is checked. The backoff rules run against a fake clock;
the served behaviour against the real `bpo-assistant chat` subprocess with a short backoff."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from api_server import PASSWORD, TEST_ITERATIONS, TOKEN, server_env, start, write_auth_files
from bpo_assistant.ui import auth, auth_file
from bpo_assistant.ui.auth import LoginThrottle
from bpo_assistant.settings import REPO_ROOT
from conftest import free_port, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_lock_a_user_for_30_s_then_doubling():
    clock = Clock()
    t = LoginThrottle(max_failures=5, base_s=30, max_failures_per_address=100, clock=clock)
    for _ in range(4):
        assert t.failed("bob", "10.0.0.1") == 0
    assert t.retry_after("bob", "10.0.0.1") == 0
    assert t.failed("bob", "10.0.0.1") == 30
    assert t.retry_after("bob", "10.0.0.9") == 30  # the user is locked from every address
    assert t.retry_after("alice", "10.0.0.1") == 0  # and nobody else is
    clock.now += 31
    assert t.retry_after("bob", "10.0.0.1") == 0
    assert t.failed("bob", "10.0.0.1") == 60
    clock.now += 61
    assert t.failed("bob", "10.0.0.1") == 120
    for _ in range(20):  # each retry as soon as the lock ends
        clock.now += t.retry_after("bob", None) + 1
        t.failed("bob", None)
    assert t.retry_after("bob", None) == 3600  # capped at an hour


def test_an_address_guessing_many_names_is_locked_and_a_success_does_not_clear_it():
    clock = Clock()
    t = LoginThrottle(max_failures=5, base_s=30, max_failures_per_address=20, clock=clock)
    for i in range(20):
        t.failed(f"user{i}", "10.0.0.2")
    assert t.retry_after("alice", "10.0.0.2") == 30
    assert t.retry_after("alice", "10.0.0.3") == 0
    t.succeeded("alice")
    assert t.retry_after("carol", "10.0.0.2") == 30
    t2 = LoginThrottle(max_failures=5, base_s=30, clock=clock)
    for _ in range(4):
        t2.failed("dave", "10.0.0.4")
    t2.succeeded("dave")
    assert t2.failed("dave", "10.0.0.4") == 0  # a success starts the user's count afresh
    clock.now += 2000
    for _ in range(4):
        t2.failed("erin", None)
    clock.now += 2000  # idle past forget_s: old strikes are dropped
    assert t2.failed("erin", None) == 0


def test_random_user_names_cannot_grow_memory():
    t = LoginThrottle(max_keys=100, clock=Clock())
    for i in range(1000):
        t.failed(f"u{i}", "10.0.0.5")
    assert len(t._strikes) <= 100


def _chat(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpo_assistant.cli", "chat", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_chat_refuses_to_bind_beyond_loopback_without_a_login(tmp_path):
    settings = make_settings(tmp_path / "data")
    env = server_env(settings)
    done = _chat("--host", "0.0.0.0", "--port", str(free_port()), env=env)
    assert done.returncode == 2 and "--allow-unauthenticated" in done.stderr and "Traceback" not in done.stderr
    bad_port = _chat("--port", "78810", env=env)
    assert bad_port.returncode == 2 and "not a TCP port" in bad_port.stderr and "Traceback" not in bad_port.stderr


def test_a_tokens_file_others_can_read_is_refused(tmp_path):
    from bpo_assistant.ui.app import serve

    users, tokens = write_auth_files(tmp_path)
    tokens.chmod(0o644)
    settings = make_settings(tmp_path / "data", auth_file=users, api_tokens_file=tokens,
                             auth_min_iterations=TEST_ITERATIONS)
    assert serve(settings, port=free_port()) == 2


def _serve_err(settings, capsys) -> tuple[int, str]:
    from bpo_assistant.ui.app import serve

    code = serve(settings, port=free_port())
    return code, capsys.readouterr().err


def test_auth_entries_below_600000_iterations_are_flagged_and_cannot_log_in(tmp_path, capsys):
    path = tmp_path / "users.txt"
    path.write_text(auth.make_line("old", PASSWORD, iterations=10_000) + "\n")
    path.chmod(0o600)
    code, err = _serve_err(make_settings(tmp_path / "data", auth_file=path), capsys)  # the default floor
    assert code == 2 and "'old'" in err
    assert "600000" in err and "python -m bpo_assistant.ui.auth" in err and "Traceback" not in err
    # next to a strong entry the weak one is named, and only it is refused
    path.write_text(auth.make_line("old", PASSWORD, iterations=10_000) + "\n"
                    + auth.make_line("new", PASSWORD, iterations=TEST_ITERATIONS) + "\n")
    users, warnings = auth_file.load_auth_file(path, min_iterations=TEST_ITERATIONS)
    assert list(users) == ["new"] and len(warnings) == 1 and "'old'" in warnings[0] and "10000" in warnings[0]
    logins = auth_file.AuthFile(path, TEST_ITERATIONS)
    logins.load()
    assert logins("new", PASSWORD) and not logins("old", PASSWORD)


def test_an_auth_file_others_can_read_is_refused(tmp_path, capsys):
    users, _ = write_auth_files(tmp_path)
    users.chmod(0o644)  # what `… >> users.txt` under the usual umask creates
    code, err = _serve_err(make_settings(tmp_path / "data", auth_file=users, auth_min_iterations=TEST_ITERATIONS),
                           capsys)
    assert code == 2 and "readable by group/others (mode 644)" in err and "chmod 600" in err
    assert "Traceback" not in err


def test_the_auth_file_is_re_read_when_it_changes(tmp_path):
    users, _ = write_auth_files(tmp_path, users=("alice", "bob"))
    logins = auth_file.AuthFile(users, TEST_ITERATIONS)
    logins.load()
    assert logins("bob", PASSWORD) and logins("alice", PASSWORD)
    users.write_text(auth.make_line("alice", PASSWORD, iterations=TEST_ITERATIONS) + "\n")  # bob revoked
    assert not logins("bob", PASSWORD) and logins("alice", PASSWORD)
    users.chmod(0o644)  # a file that became unusable refuses everyone rather than serving a stale copy
    assert not logins("alice", PASSWORD)
    users.chmod(0o600)
    assert logins("alice", PASSWORD)


@pytest.fixture(scope="module")
def server(real_settings, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth-server")
    users, tokens = write_auth_files(tmp, users=("alice", "bob", "carol"))
    srv = start(real_settings, free_port(), tmp / "server.log", auth_file=users, api_tokens_file=tokens,
                login_max_failures=3, login_max_failures_per_address=6, login_backoff_s=2)
    srv.users_file = users
    yield srv
    srv.stop()


def _login(base: str, user: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30) as c:
        return c.post("/login", data={"username": user, "password": password})


@pytest.mark.slow
@pytest.mark.server
def test_failed_logins_back_off_per_user_then_per_address_and_are_logged(server):
    base = server.base
    for _ in range(3):
        assert _login(base, "bob", "wrong").status_code == 400
    locked = _login(base, "bob", PASSWORD)  # even the right password waits out the lock
    assert locked.status_code == 429 and locked.headers["retry-after"] in ("1", "2")  # the 2 s lock, rounded up
    assert "try again" in locked.json()["error"]["message"]
    assert _login(base, "alice", PASSWORD).status_code == 200  # other users are not locked out
    time.sleep(2.2)
    assert _login(base, "bob", PASSWORD).status_code == 200
    for _ in range(3):
        _login(base, "carol", "wrong")
    time.sleep(2.2)
    assert _login(base, "carol", "wrong").status_code == 400
    doubled = _login(base, "carol", PASSWORD)
    assert doubled.status_code == 429 and int(doubled.headers["retry-after"]) > 2  # 4 s, less what has passed
    # 7 failures from this address by now (3 bob + 4 carol): the address itself is held, for alice too
    assert _login(base, "alice", PASSWORD).status_code == 429
    log = server.stderr()
    assert "login backoff: user='bob'" in log and "address=127.0.0.1" in log and "Traceback" not in log
    time.sleep(int(doubled.headers["retry-after"]) + 0.2)
    assert _login(base, "alice", PASSWORD).status_code == 200


@pytest.mark.slow
@pytest.mark.server
def test_wrong_bearer_tokens_back_off_the_address(server):
    # From another loopback address: the login test above has already held 127.0.0.1.
    with httpx.Client(base_url=server.base, timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as c:
        while (r := c.get("/v1/models", headers={"Authorization": "Bearer guess"})).status_code == 401:
            pass
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # a locked address is refused before its token is even looked at
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
        time.sleep(int(r.headers["retry-after"]) + 0.3)
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.slow
@pytest.mark.server
def test_a_revoked_user_cannot_log_in_to_the_running_server(server, tmp_path):
    users = server.users_file
    before = users.read_text()
    # From its own loopback address: the tests above have held 127.0.0.1 and 127.0.0.2.
    with httpx.Client(base_url=server.base, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.3")) as c:
        assert c.post("/login", data={"username": "bob", "password": PASSWORD}).status_code == 200
        users.write_text("".join(line + "\n" for line in before.splitlines() if not line.startswith("bob:")))
        try:
            assert c.post("/login", data={"username": "bob", "password": PASSWORD}).status_code == 400
            assert c.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 200
        finally:
            users.write_text(before)
