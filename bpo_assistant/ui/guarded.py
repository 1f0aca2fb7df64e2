"""GuardedBlocks: a gr.Blocks whose API answers a malformed call with a short error, never a server traceback.

Gradio checks a call's values only while running it: too few values raise ValueError, a value outside a
Dropdown's choices raises gr.Error, a None where an internal handler unpacks a tuple raises TypeError, and each
is printed to the server log as a full traceback (the caller sees a bare error). Anyone who can reach the page
can send such calls to any event, public or not, so a noisy log would be theirs to fill. Here the caller gets
one line naming what was wrong, and the log gets one line too.
"""

from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger(__name__)


def _name(fn) -> str:
    """/chat for a named endpoint, else the handler's name (a validator runs as an unnamed copy of its event)."""
    api = getattr(fn, "api_name", None)
    return f"/{api}" if api else getattr(fn, "name", "") or "event"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text[:limit]


class GuardedBlocks(gr.Blocks):
    """gr.Blocks that rejects a malformed call (wrong number of values, wrong types, None) quietly."""

    async def process_api(self, block_fn, inputs, *args, **kwargs):
        fn = self.fns.get(block_fn) if isinstance(block_fn, int) else block_fn
        wanted = len(getattr(fn, "inputs", None) or ())
        if not isinstance(inputs, list) or (not kwargs.get("iterator") and len(inputs) < wanted):
            got = len(inputs) if isinstance(inputs, list) else type(inputs).__name__
            names = [n for n in (getattr(fn, "input_parameter_names", None) or ()) if n]
            takes = f"{wanted} values ({', '.join(names)})" if len(names) == wanted else f"{wanted} values"
            log.warning("rejected a call to %s: expected %s, got %s", _name(fn), takes, got)
            raise gr.Error(f"invalid request: {_name(fn)} takes {takes}, got {got}", print_exception=False)
        try:
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except gr.Error as exc:
            if not exc.print_exception:
                raise
            log.warning("rejected a call to %s: %s", _name(fn), _first_line(exc))
            raise gr.Error(f"invalid request: {_first_line(exc)}", print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - our handlers log their own failures; this is Gradio's input handling
            log.warning("rejected a call to %s: %s: %s", _name(fn), type(exc).__name__, _first_line(exc))
            raise gr.Error(f"invalid request to {_name(fn)}: {type(exc).__name__}", print_exception=False) from None
