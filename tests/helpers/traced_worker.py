"""A Tickr worker that exports its spans as JSON lines, for the cross-process trace test.

    python -m tests.helpers.traced_worker URL NAMESPACE SPANS_FILE

Sets up the OpenTelemetry SDK with a simple processor writing each ended span as one
line of JSON to SPANS_FILE, then serves queue "default": type "work" returns its
payload (and makes a child span "inside"), type "flaky" fails its first attempt.  Logs
"serving" once ready; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import tickr
import tickr.tracing


class JsonLines(SpanExporter):
    def __init__(self, path: str) -> None:
        self._path = path

    def export(self, spans: object) -> SpanExportResult:
        with open(self._path, "a", encoding="utf-8") as out:
            for span in spans:  # type: ignore[attr-defined]
                out.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "namespace", "spans"):
        parser.add_argument(name)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(args.spans)))
    trace.set_tracer_provider(provider)
    tickr.tracing.enable()
    tracer = trace.get_tracer("traced_worker")
    mux = tickr.ServeMux()

    @mux.handle("work")
    async def work(task: tickr.Task) -> object:
        with tracer.start_as_current_span("inside"):
            return task.payload

    @mux.handle("flaky")
    async def flaky(task: tickr.Task) -> None:
        if task.retry_count == 0:
            raise ValueError("first attempt fails")

    server = tickr.Server(
        args.url, namespace=args.namespace, retry_delay=tickr.constant_delay(0.05)
    )
    server.run(mux)


if __name__ == "__main__":
    main()
