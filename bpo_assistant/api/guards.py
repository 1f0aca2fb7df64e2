"""ASGI guards in front of the whole app (API and Gradio alike): body size, login backoff, and Gradio's routes
closed to callers without a session when the login is on.

They sit at the ASGI level because Gradio's login route hands its `auth=` callable only a user name and a
password: the client address, and the answer to send a locked-out caller, exist only out here.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.requests import HTTPConnection

from bpo_assistant.ui.auth import LoginThrottle

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/")
LOGIN_PATHS = ("/login", "/login/")
# What a browser without a session needs to show Gradio's login page and send the form. Everything else Gradio
# serves (queue, cancel, reset, heartbeat, stream, info, file, upload, run history…) wants the session cookie.
PUBLIC_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/config", "/config/", "/theme.css",
                          "/favicon.ico", "/robots.txt", "/gradio_api/theme.css", "/gradio_api/login_check",
                          "/gradio_api/login_check/", "/healthz", "/readyz"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict:
    """The OpenAI error shape, used by every API answer that is not a success (clients already parse it)."""
    return {"error": {"message": message, "type": kind, "code": code}}


async def send_json(send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    raw = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def read_body(receive, limit: int) -> bytes | None:
    """The whole request body, or None when it passes `limit` bytes (the rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive):
    """The buffered body once, then the real channel: a streamed answer watches it for the client leaving."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def client_address(scope) -> str:
    # The socket's peer; behind a reverse proxy that is the proxy (X-Forwarded-For is not trusted on purpose).
    client = scope.get("client")
    return client[0] if client else "unknown"


class BodyLimit:
    """API and login bodies are read whole, at most `max_bytes`; a longer one is a 413 before any parsing."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith(API_PREFIXES) or path in LOGIN_PATHS):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        body = await read_body(receive, self.max_bytes)
        if body is None:
            return await self._too_large(send)
        await self.app(scope, replay(body, receive), send)

    async def _too_large(self, send):
        await send_json(send, 413, error_body(f"request body larger than {self.max_bytes} bytes"))


class LoginBackoff:
    """Gradio's POST /login behind a LoginThrottle: a locked user or address gets 429 with Retry-After, and the
    login route's own answer (200 or 400) counts as a success or a failure. Runs inside BodyLimit."""

    def __init__(self, app, throttle: LoginThrottle) -> None:
        self.app, self.throttle = app, throttle

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in LOGIN_PATHS:
            return await self.app(scope, receive, send)
        body = await read_body(receive, 1 << 20)  # already bounded by BodyLimit
        form = parse_qs((body or b"").decode("utf-8", "replace"))
        user = (form.get("username") or [""])[0].strip()
        address = client_address(scope)
        wait = math.ceil(self.throttle.retry_after(user, address))
        if wait > 0:
            log.warning("login refused during backoff: user=%r address=%s retry in %d s", user, address, wait)
            return await send_json(send, 429, error_body(f"too many failed logins; try again in {wait} s",
                                                         "rate_limit_error"), {"Retry-After": str(wait)})
        status: list[int] = []

        async def watch(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, replay(body or b"", receive), watch)
        if status and status[0] == 200:
            self.throttle.succeeded(user)
        elif status and 400 <= status[0] < 500:
            self.throttle.failed(user, address)


class SessionGuard:
    """With the login on: Gradio's routes answer only callers holding a session cookie Gradio issued, except
    the login page itself. The API paths carry their own bearer check and pass through."""

    def __init__(self, app, sessions: Callable[[], dict]) -> None:
        self.app, self.sessions = app, sessions  # sessions(): Gradio's token -> user table, looked up per call

    def _logged_in(self, scope) -> bool:
        table = self.sessions()
        return any(name.startswith("access-token") and value in table
                   for name, value in HTTPConnection(scope).cookies.items())

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or path.startswith(API_PREFIXES) or path in PUBLIC_PATHS \
                or path.startswith(PUBLIC_PREFIXES) or self._logged_in(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await send_json(send, 401, error_body("not logged in", "authentication_error"))
