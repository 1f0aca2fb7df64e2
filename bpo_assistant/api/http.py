"""The HTTP API beside the chat: one FastAPI app holds /api/ask, the OpenAI-compatible /v1 routes, /healthz,
/readyz and the mounted Gradio chat, so they share one process and one Assistant.

Auth: with BPO_AUTH_FILE or BPO_API_TOKENS_FILE set, every /api and /v1 call needs `Authorization: Bearer
<token>` from the tokens file (a login name + password per call would cost PBKDF2 each time); a wrong token
counts toward the address's login backoff. /healthz and /readyz stay open for probes and say nothing private.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Mount

from bpo_assistant.settings import Settings
from bpo_assistant.ui.auth import LoginThrottle

from .guards import BodyLimit, LoginBackoff, SessionGuard, client_address, error_body
from .tokens import TokenStore

log = logging.getLogger(__name__)


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)
    sections: tuple[str, ...] = ()  # "doc#section" of an earlier answer (its `sections`): 「その中で…」 narrows to it


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    question: str = Field(min_length=1)
    history: tuple[HistoryTurn, ...] = Field(default=(), max_length=50)
    topic: str | None = None
    # The answer follows the question's language, as in the chat; `lang` only picks the language of this API's
    # own message for a too-long question.
    lang: Literal["ja", "en"] | None = None


class Api:
    """What the routes share: the assistant, the settings, who may call, and how many answers run at once."""

    def __init__(self, assistant, settings: Settings, tokens: TokenStore, throttle: LoginThrottle) -> None:
        self.assistant, self.settings, self.tokens, self.throttle = assistant, settings, tokens, throttle
        self.auth_on = bool(settings.auth_file or settings.api_tokens_file)
        self.limiter = anyio.CapacityLimiter(max(1, settings.api_concurrency))

    def caller(self, request: Request) -> str | None:
        """The token's name when auth is on (None when it is off); 401/429 otherwise."""
        if not self.auth_on:
            return None
        if self.tokens.path is None:
            raise HTTPException(401, "this server has a login but no API tokens (BPO_API_TOKENS_FILE)",
                                headers={"WWW-Authenticate": "Bearer"})
        address = client_address(request.scope)
        if (wait := math.ceil(self.throttle.retry_after(None, address))) > 0:
            raise HTTPException(429, f"too many failed attempts; try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        name = self.tokens.name_for(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if name is None:
            self.throttle.failed(None, address)
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        return name

    def check_question(self, question: str, lang: str | None, history: Sequence[Mapping] = ()) -> None:
        for text in (question, *(t["content"] for t in history)):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate ("\ud800") parses as JSON but is no text
                raise HTTPException(422, "text contains invalid Unicode (a lone surrogate)") from None
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise HTTPException(422, f"質問は{limit}文字以内にしてください" if lang == "ja"
                                else f"question longer than {limit} characters")

    async def ask(self, question: str, history: list[dict], topic: str | None, user: str | None):
        def run():
            return self.assistant.ask(question, history, topic, channel="api", user=user)

        try:
            return await anyio.to_thread.run_sync(run, limiter=self.limiter)
        except ValueError as exc:  # an unknown topic names the known ones
            raise HTTPException(400, str(exc)) from None


def _status_kind(status: int) -> str:
    return {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            429: "rate_limit_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" or tuple(e.get("loc", ())) == ("body",) for e in errors):
        return 400, "body must be a JSON object (Content-Type: application/json)"
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return 422, f"{where}: {first.get('msg', 'invalid')}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")


def install_errors(app: FastAPI) -> None:
    """Every failure is one JSON line in the OpenAI error shape; a fault of ours is logged once, never shown."""

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and the router's 404/405 alike
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(error_body(str(exc.detail), _status_kind(exc.status_code)), exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        status, message = _validation_message(exc)
        return JSONResponse(error_body(message), status)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("API request %s failed", request.url.path)
        return JSONResponse(error_body("internal error; see the server log", "server_error"), 500)


def create_app(assistant, settings: Settings, demo=None, auth=None, auth_message: str | None = None) -> FastAPI:
    """The combined app. `demo` (a gr.Blocks from build_app) is mounted at / with `auth` (the login verifier)."""
    from .openai_compat import router as openai_router

    api = Api(assistant, settings, TokenStore(settings.api_tokens_file),
              LoginThrottle(settings.login_max_failures, settings.login_backoff_s,
                            settings.login_max_failures_per_address))
    app = FastAPI(title="bpo-assistant", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.api = api
    install_errors(app)
    caller = Depends(api.caller)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        try:
            kb = assistant.knowledge()
            ready = {"ready": True, "generation": kb.generation or "", "topics": len(assistant.topics())}
        except Exception as exc:  # noqa: BLE001 - a probe answers "not ready" with the reason's kind
            log.warning("readyz: index not loaded: %s", type(exc).__name__)
            return JSONResponse({"ready": False, "error": f"index not loaded ({type(exc).__name__})"}, 503)
        return ready

    @app.post("/api/ask")
    async def ask(body: AskRequest, user: str | None = caller) -> dict[str, Any]:
        api.check_question(body.question, body.lang)
        history = [{"role": t.role, "content": t.content, **({"sections": list(t.sections)} if t.sections else {})}
                   for t in body.history]
        answer = await api.ask(body.question, history, body.topic, user)
        return answer.to_json()

    app.include_router(openai_router(api))
    if demo is not None:
        import gradio as gr

        from bpo_assistant.ui.serving import mount_kwargs

        gr.mount_gradio_app(app, demo, path="/", auth=auth, auth_message=auth_message,
                            app_kwargs={"openapi_url": None, "docs_url": None, "redoc_url": None},
                            **mount_kwargs(settings))
        gradio_app = next(r.app for r in app.routes if isinstance(r, Mount))
        # Gradio's queue runs an event's validator (the chat has one: validate_chat_call) through
        # call_process_api(app=self.blocks.app) (gradio/queueing.py:322-325), which looks the session up in that
        # App's state holder (route_utils.restore_session_state, route_utils.py:339). launch() makes blocks.app
        # the served App (blocks.py:3395); mount_gradio_app leaves it at the unserved App that demo.queue()
        # built (blocks.py:2978). So every chat session got a second SessionState (a copy of the page's config,
        # ~0.17 MB) in a holder no request reads again, that the session janitor never sees and that only
        # drops one beyond 10,000: +84.7 MB over a 5,000-question soak. The served App it is, as with launch().
        demo.app = gradio_app
        app.state.gradio_stop_event = gradio_app.stop_event  # ends Gradio's streams at shutdown (run_server)
        if auth is not None:
            app.add_middleware(SessionGuard, sessions=lambda: gradio_app.tokens)
    app.add_middleware(LoginBackoff, throttle=api.throttle)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # added last = outermost
    return app
