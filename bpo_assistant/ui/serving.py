"""How the app is served: theme (local CJK font stack), CSS, launch options and queue tuning.

Shared by serve(), the tests and benchmarks/load.py so every launch looks and behaves the same.
"""

from __future__ import annotations

import os
from typing import Any

from bpo_assistant.settings import Settings

FONT = ["Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", "Meiryo", "system-ui", "sans-serif"]
FONT_MONO = ["Noto Sans Mono CJK JP", "DejaVu Sans Mono", "ui-monospace", "monospace"]

CSS = """
.bpo-badges { margin-bottom: .25rem; }
.bpo-badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .85em; font-weight: 600; }
.bpo-verified { background: #dcfce7; color: #166534; border: 1px solid #86efac; }
.bpo-stale { background: #fef3c7; color: #92400e; border: 1px solid #fcd34d; }
.bpo-query, .bpo-notice, .bpo-qs, .bpo-doc-meta { font-size: .85em; opacity: .85; margin: .35rem 0; }
.bpo-sources { margin-top: .5rem; border-top: 1px solid var(--border-color-primary); padding-top: .35rem; }
.bpo-sources summary { cursor: pointer; font-weight: 600; }
.bpo-source { margin: .5rem 0; }
.bpo-source-title { font-weight: 600; font-size: .9em; }
.bpo-source-text { font-size: .85em; padding-left: .75rem; border-left: 3px solid var(--border-color-primary); }
.bpo-source-text mark { background: #fde68a; color: inherit; padding: 0 .1em; }
.bpo-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .4rem .75rem;
  margin: .4rem 0; }
.bpo-card > summary { cursor: pointer; font-weight: 600; }
.bpo-card-q { margin-right: .4rem; }
#bpo-header h1 { margin: 0; font-size: 1.4rem; }
#bpo-suggest { flex-wrap: wrap; align-items: center; gap: .35rem; }
#bpo-suggest > #bpo-suggest-title { flex: 0 0 auto; width: auto; }
.bpo-suggest-title { font-size: .9em; opacity: .85; white-space: nowrap; }
#bpo-suggest .bpo-suggest-q { flex: 0 0 auto; white-space: normal; text-align: left; max-width: 100%; }
a.bpo-cite { text-decoration: none; font-weight: 600; }
a.bpo-cite:hover { text-decoration: underline; }
.bpo-kb-target { margin: .75rem 0 .25rem; padding: .15rem .5rem; border-left: 4px solid #f59e0b;
  background: #fef3c7; color: #92400e; font-size: .85em; font-weight: 600; }
#bpo-download-row { align-items: center; }
"""

# Questions answered at once. Each answer is ~20 ms of embedding (C, releases the GIL) plus ~20-30 ms of Python
# (retrieval, Gradio) under the GIL, so two cores saturate with a few in flight; more only adds contention.
# Override with BPO_CHAT_CONCURRENCY. Other events (feedback, tabs) run unqueued or at the queue default.
CHAT_CONCURRENCY = 4
# 「もしかして」 lookups at once: one query embedding each, debounced in the browser; kept below the chat's share so
# typing never crowds out answering.
SUGGEST_CONCURRENCY = 2

def make_theme():
    import gradio as gr

    # Plain font names: a local/system stack, never gr.themes.GoogleFont (no request leaves the machine).
    return gr.themes.Default(font=FONT, font_mono=FONT_MONO)


def launch_kwargs(settings: Settings | None = None) -> dict[str, Any]:
    from .cite_links import CITE_CLICK_JS

    blocked = [str(settings.data_dir)] if settings is not None else []
    return dict(
        theme=make_theme(),
        css=CSS,
        js=CITE_CLICK_JS,  # cited [n] markers open their section in the Knowledge tab
        footer_links=["api", "settings"],
        run_history=False,  # no questions kept in the browser's storage
        pwa=False,
        mcp_server=False,
        ssr_mode=False,
        enable_monitoring=False,
        show_error=False,
        strict_cors=True,
        blocked_paths=blocked or None,
        quiet=True,
    )


# launch() options that mount_gradio_app (the chat inside the API's FastAPI app) does not take.
_LAUNCH_ONLY = ("strict_cors", "quiet")  # strict_cors is mount_gradio_app's default already


def mount_kwargs(settings: Settings | None = None) -> dict[str, Any]:
    """launch_kwargs for gr.mount_gradio_app, so the served chat looks and behaves like the launched one."""
    return {k: v for k, v in launch_kwargs(settings).items() if k not in _LAUNCH_ONLY}


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(app, host: str, port: int, stop_event=None) -> None:
    """uvicorn until Ctrl-C. Gradio's open streams (each tab's heartbeat, queue data) end only when its app's
    `stop_event` is set; unset, they hold the graceful shutdown until uvicorn cancels them, with a traceback
    each. So the exit signal sets it first, in the server's loop (call_soon_threadsafe is signal-safe)."""
    import asyncio

    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if stop_event is not None:
                try:
                    asyncio.get_running_loop().call_soon_threadsafe(stop_event.set)
                except RuntimeError:  # the loop is not running yet: nothing streams
                    pass
            super().handle_exit(sig, frame)

    # log_config=None: uvicorn's records go through the root handler configure_logging installed (BPO_LOG_FORMAT=json
    # stays one JSON object per line) instead of uvicorn's own text handlers.
    Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, log_config=None,
                          timeout_graceful_shutdown=10)).run()


def env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def quiet_gradio_queue() -> None:
    """Gradio's queue rebuilds a pandas summary of up to 10,000 past events after every event, for the monitoring
    dashboard, which this app disables. That per-question cost grows with traffic, so recompute it practically
    never and keep a short event record. Read when the queue is created (build_app calls demo.queue())."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10**9))
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "16")


def close_app(demo) -> None:
    """Stop a launched app from another thread. Gradio's close() sets an asyncio.Event owned by the server's
    event loop from the calling thread; when a stream is still waiting on it, that races the loop and raises
    "deque mutated during iteration" (seen in CI). Setting it inside its own loop first makes close() a no-op there."""
    import asyncio

    event = getattr(getattr(demo, "app", None), "stop_event", None)
    loop = getattr(event, "_loop", None)  # bound on first wait(); None means nobody waits, so close() is safe
    if event is not None and loop is not None and loop.is_running():

        async def _set() -> None:
            event.set()

        try:
            asyncio.run_coroutine_threadsafe(_set(), loop).result(timeout=5)
        except Exception:  # loop already stopping: close() below still frees the port
            pass
    demo.close()
