"""Optional OpenTelemetry spans (BPO_OTEL=1): one span per answer, a child span per stage.

The spans are built after the fact from the AnswerEvent: the answer's end (`event.at`), its total latency and the
per-stage laps in `Answer.timings` give every start and end time, so the query path carries no tracing code and
an answer never waits for it (export happens in the SDK's batch thread).

Exporter: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (gRPC, the exporter that comes with chromadb; `http/protobuf`
in OTEL_EXPORTER_OTLP_PROTOCOL picks the HTTP exporter if it is installed). Otherwise the global tracer provider:
a no-op unless the host process installed an SDK provider (`opentelemetry-instrument`, a test). Missing packages
are one warning and no spans, never a failed answer.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from .settings import Settings
from .types import AnswerEvent

log = logging.getLogger(__name__)

ROOT_SPAN = "bpo.answer"
SERVICE = "bpo-assistant"
EXIT_WAIT_S = 0.5  # what exit waits for the last spans: a one-shot `ask` against a dead collector ends in < 1 s


class AnswerTracer:
    def __init__(self, tracer) -> None:
        self.tracer = tracer

    def record(self, event: AnswerEvent, fields: dict[str, Any]) -> None:
        from opentelemetry import trace

        end = int(event.at * 1e9)
        start = end - int(event.latency_ms * 1e6)
        attrs = _attributes(fields)
        root = self.tracer.start_span(ROOT_SPAN, attributes=attrs, start_time=start)
        ctx = trace.set_span_in_context(root)
        # The stages are consecutive laps that end when the answer is composed, i.e. just before the event: lay
        # them out backwards from the end. What precedes the first lap (picking the index snapshot) stays in the root.
        stages = list(event.answer.timings.items())
        cursor = max(start, end - int(sum(ms for _, ms in stages) * 1e6))
        for name, ms in stages:
            stop = min(end, cursor + int(ms * 1e6))
            child = self.tracer.start_span(f"bpo.{name}", context=ctx, start_time=cursor,
                                           attributes={"bpo.stage": name, "bpo.surface": attrs["bpo.surface"]})
            child.end(end_time=stop)
            cursor = stop
        root.end(end_time=end)


def _attributes(fields: dict[str, Any]) -> dict[str, Any]:
    """Span attributes are scalars or lists of scalars: the stage timings become one attribute each."""
    attrs: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "stages_ms":
            attrs.update({f"bpo.stage_ms.{k}": v for k, v in value.items()})
        elif value is None:
            continue
        else:
            attrs[f"bpo.{key}"] = list(value) if isinstance(value, (list, tuple)) else value
    return attrs


def _exporter():
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()  # endpoint, headers, timeout: the standard OTEL_EXPORTER_OTLP_* variables


def exit_hook(provider, exporter, seconds: float):
    """The atexit hook that shuts the provider down within `seconds`. Its thread starts now, not at exit: Python
    3.12 refuses to start a thread in an atexit hook ("can't create new thread at interpreter shutdown"), which
    lost every last span there."""
    go = threading.Event()

    def run() -> None:
        go.wait()
        provider.shutdown()

    worker = threading.Thread(target=run, name="bpo-otel-shutdown", daemon=True)
    worker.start()
    return lambda: shutdown_within(go, worker, exporter, seconds)


def shutdown_within(go: threading.Event, worker: threading.Thread, exporter, seconds: float) -> bool:
    """Let `worker` flush and shut down the provider, waiting at most `seconds`; False (one warning) when the
    collector did not take the last spans in time. The exporter's own timeout stays the standard one
    (OTEL_EXPORTER_OTLP_TIMEOUT) for exports while the process runs: only the exit is bounded, so a slow collector
    still gets a server's spans."""
    go.set()
    worker.join(seconds)
    if not worker.is_alive():
        return True
    log.warning("OpenTelemetry: the collector did not take the last spans within %.1f s; exiting without them",
                seconds)
    # Ends the exporter's retry wait and closes its channel, so the export thread ends too; the exporter's own
    # warnings about it ("aborting retry", "already shutdown") would only repeat the line above.
    logging.getLogger("opentelemetry.exporter").setLevel(logging.ERROR)  # its modules' loggers inherit this
    exporter.shutdown()
    return False


def make_tracer(settings: Settings, provider=None) -> AnswerTracer | None:
    """The answer tracer, or None (with one warning) when the OpenTelemetry packages are missing. `provider`: a
    TracerProvider to use instead of the OTLP one or the global one (tests pass one with an in-memory exporter)."""
    try:
        from opentelemetry import trace

        if provider is None and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                 or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # Attributes given here override the environment's, so name the service only if OTEL_SERVICE_NAME does not.
            base = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE}
            # Our own exit hook instead of the SDK's: its shutdown waits for the last export, which against an
            # unreachable collector retries for ~7 s of the exporter's 10 s timeout after a one-shot `ask`.
            provider = TracerProvider(resource=Resource.create(base), shutdown_on_exit=False)
            exporter = _exporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
            atexit.register(exit_hook(provider, exporter, EXIT_WAIT_S))
        provider = provider or trace.get_tracer_provider()
        from . import __version__

        return AnswerTracer(provider.get_tracer("bpo_assistant", __version__))
    except ImportError as exc:
        log.warning("BPO_OTEL=1 but OpenTelemetry is not installed (%s): no spans; "
                    "pip install opentelemetry-sdk opentelemetry-exporter-otlp", exc.name or exc)
        return None
