"""Roles in the auth file (issue 10): `user:hash[:role]` lines, old lines read as role user, a bad role named with
its file and line; the ナレッジ管理 handlers refuse a non-admin login even when called through the served Gradio
API, not just hidden from the page."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from bpo_assistant.settings import OFFLINE_ENV
from bpo_assistant.ui import auth
from conftest import free_port, make_settings

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

ITER = 20_000  # the lowest accepted cost keeps the logins quick


# ---- the file format ----------------------------------------------------------------------------------------
def test_a_role_round_trips_and_the_user_role_writes_the_old_line(tmp_path):
    admin = auth.make_line("sato", "pw-admin", iterations=ITER, role="admin")
    plain = auth.make_line("tanaka", "pw-user", iterations=ITER)
    assert admin.endswith(":admin") and plain.count(":") == 1  # role user: the line an old reader accepts
    path = tmp_path / "users.txt"
    path.write_text(f"# owners\n{admin}\n\n{plain}\n")
    accounts = auth.parse_accounts(path)
    assert {u: a.role for u, a in accounts.items()} == {"sato": "admin", "tanaka": "user"}
    verify = auth.make_verifier(auth.parse_auth_file(path))  # the role never becomes part of the hash
    assert verify("sato", "pw-admin") and verify("tanaka", "pw-user") and not verify("sato", "pw-user")
    assert auth.parse_auth_file(path)["sato"] == admin.split(":")[1]


def test_a_line_written_before_roles_is_still_valid_and_role_user(tmp_path):
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 10_000, 32)).decode()
    path = tmp_path / "users.txt"
    path.write_text(f"alice:pbkdf2_sha256$10000$salt${digest}\n")
    (account,) = auth.parse_accounts(path).values()
    assert account == auth.Account("alice", f"pbkdf2_sha256$10000$salt${digest}", "user")
    assert auth.make_verifier(auth.parse_auth_file(path))("alice", "pw")
    assert auth.role_of(path, "alice") == "user" and auth.role_of(path, "bob") is None


@pytest.mark.parametrize("role", ["Admin", "root", "", "admin:extra", " admin"])
def test_an_unknown_role_is_refused_naming_file_and_line(tmp_path, role):
    path = tmp_path / "users.txt"
    good = auth.make_line("sato", "pw", iterations=ITER)
    path.write_text(f"# comment\n{good}\n{good.replace('sato', 'suzuki')}:{role}\n")
    with pytest.raises(auth.AuthFileError) as err:
        auth.parse_accounts(path)
    message = str(err.value)
    assert f"{path}:3:" in message and "role" in message and "admin" in message
    with pytest.raises(auth.AuthFileError):  # the login's reader refuses the same file: the server will not start
        auth.parse_auth_file(path)


def test_serve_refuses_an_auth_file_with_a_bad_role(tmp_path, capsys):
    from bpo_assistant.ui.app import serve

    path = tmp_path / "users.txt"
    path.write_text(auth.make_line("sato", "pw", iterations=ITER) + ":superuser\n")
    assert serve(make_settings(tmp_path / "data", auth_file=path), port=free_port()) == 2
    err = capsys.readouterr().err
    assert f"{path}:1:" in err and "'superuser'" in err


def test_helper_prints_an_admin_line_and_refuses_an_unknown_role(monkeypatch, capsys):
    monkeypatch.setattr(auth.getpass, "getpass", lambda prompt="": "correct horse")
    assert auth.main(["sato", "--role", "admin"]) == 0
    line = capsys.readouterr().out.strip()
    user, encoded, role = line.split(":")
    assert (user, role) == ("sato", "admin") and auth.verify_password("correct horse", encoded)
    assert auth.main(["tanaka"]) == 0 and capsys.readouterr().out.strip().count(":") == 1
    assert auth.main(["sato", "--role", "root"]) == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_taking_the_role_away_in_the_file_applies_without_a_restart(tmp_path):
    from bpo_assistant.ui.admin import admin_of

    path = tmp_path / "users.txt"
    line = auth.make_line("sato", "pw", iterations=ITER)
    path.write_text(line + ":admin\n")
    settings = make_settings(tmp_path / "data", auth_file=path, admins="")
    assert admin_of(settings, "sato", "0.0.0.0")[0]
    path.write_text(line + "\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on a coarse clock
    assert not admin_of(settings, "sato", "0.0.0.0")[0]
    path.write_text(line + ":admn\n")  # broken while being edited: no one is admin, nothing crashes
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert not admin_of(settings, "sato", "127.0.0.1")[0]


# ---- through the served Gradio API ---------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path):
    """The real app (build_app, the real question log) behind Gradio's login: sato is admin, tanaka a user."""
    from test_ui_app import ObservedAssistant

    from bpo_assistant.ui.app import build_app, launch_kwargs
    from bpo_assistant.ui.serving import close_app

    users = tmp_path / "users.txt"
    users.write_text(auth.make_line("sato", "pw-admin", iterations=ITER, role="admin") + "\n"
                     + auth.make_line("tanaka", "pw-user", iterations=ITER) + "\n")
    settings = make_settings(tmp_path / "data", auth_file=users, admins="")
    fake = ObservedAssistant()
    fake.embedder = None  # one refused question: one theme, nothing to embed
    fake.knowledge = lambda: SimpleNamespace(question_vectors=None)
    demo = build_app(fake, settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                auth=auth.make_async_verifier(auth.parse_auth_file(users)), **launch_kwargs(settings))
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", demo=demo, fake=fake, settings=settings)
    close_app(demo)


def _client(url: str, user: str, password: str):
    """gradio_client signed in as `user`, with the admin events made callable: gradio_client declines events
    marked private, but the server runs whatever fn_index a client posts, so an attacker's client would not."""
    from gradio_client import Client

    client = Client(url, verbose=False, ssl_verify=False, analytics_enabled=False, auth=(user, password))
    for endpoint in client.endpoints.values():
        endpoint.is_valid = True
    return client


def _event(demo, name: str) -> int:
    return next(fn._id for fn in demo.fns.values() if fn.name == name)


def test_a_non_admin_login_is_refused_by_the_admin_endpoints_and_an_admin_is_served(served):
    from gradio_client.exceptions import AppError

    from bpo_assistant.owners import triage
    from test_ui_app import _flush_log

    load, oos = _event(served.demo, "load"), _event(served.demo, "out_of_scope")
    admin = _client(served.url, "sato", "pw-admin")
    admin.predict("明日の天気は？", api_name="/chat")  # refused by the fake → the triage queue
    _flush_log(served.fake)
    (item,) = triage.items(served.settings)

    user = _client(served.url, "tanaka", "pw-user")
    # Every admin event, with values its components accept (None: nothing chosen), so the refusal is the
    # handler's own login check, not Gradio's input validation.
    calls = {"load": (), "sections": (None,), "add_question": (None, None), "out_of_scope": (None,),
             "add_case": (None, None, "evals/suites/triage.jsonl", True), "add_alias": (None, "BPO", "PC"),
             "add_draft": (None, None), "maintenance": ()}
    for name, args in calls.items():
        with pytest.raises(AppError, match="admin only"):
            user.predict(*args, fn_index=_event(served.demo, name))
    assert triage.items(served.settings)[0].status == "未対応"  # the refused call changed nothing
    user.close()

    queue_rows = admin.predict(fn_index=load)[0]  # the queue table, first of load's outputs
    assert "明日の天気は？" in str(queue_rows)
    assert "✓ 対象外" in admin.predict(f"q{item.id}", fn_index=oos)
    assert triage.items(served.settings, statuses=None)[0].changed_by == "sato"
    admin.close()
