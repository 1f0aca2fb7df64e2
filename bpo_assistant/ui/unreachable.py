"""What `bpo-assistant chat` serves while its Chroma server (BPO_CHROMA_URL) does not answer: one page naming
the URL, on the port the chat will use, until the store answers; then the chat starts in its place.

Why a page and not an exit: the chat is usually started by a service manager beside the store, and the two come
up in either order. Users opening the chat meanwhile see why it is not there (and the page reloads itself)
instead of a refused connection, and the operator sees one line in the log, not a traceback per request.
"""

from __future__ import annotations

import html
import sys
import threading
import time

from bpo_assistant.ingest.status import store_error
from bpo_assistant.settings import Settings

RETRY_S = 5.0
_PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{retry}">
<title>BPO assistant</title></head><body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>ベクトルストアに接続できません</h1><p>{error}</p><p>接続でき次第チャットが始まります（{retry} 秒ごとに再読み込み）。</p>
<p lang="en">The vector store is unreachable; the chat starts as soon as it answers (this page reloads every
{retry} s).</p></body></html>"""


def holding_app(error: str, retry_s: float = RETRY_S):
    """An ASGI app answering every request with 503 and the page (Retry-After set, so probes and proxies wait)."""
    body = _PAGE.format(error=html.escape(error), retry=int(retry_s)).encode("utf-8")

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # nothing to start or stop; uvicorn still asks
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"retry-after", str(int(retry_s)).encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def wait_for_store(settings: Settings, host: str, port: int, retry_s: float = RETRY_S) -> None:
    """Return at once when the store answers; otherwise serve the page until it does (KeyboardInterrupt passes
    through, after the page's server has stopped)."""
    error = store_error(settings)
    if error is None:
        return
    import uvicorn

    print(f"{error}; serving a notice on http://{host}:{port} and retrying every {retry_s:g} s", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(holding_app(error, retry_s), host=host, port=port, log_level="warning",
                                           access_log=False, log_config=None))
    thread = threading.Thread(target=server.run, name="store-unreachable-page", daemon=True)
    thread.start()
    try:
        while (error := store_error(settings)) is not None:
            time.sleep(retry_s)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    print(f"vector store at {settings.chroma_url} answers again: starting the chat", file=sys.stderr)
