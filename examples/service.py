"""A small service showing traces, metrics and logs with no external backend.

Run: ``./run demo`` (or ``python examples/service.py --serve`` to keep it running).
It starts an HTTP server on 127.0.0.1, sends itself a few requests, prints what
each signal produced, and shuts down gracefully.
"""

from __future__ import annotations

import sys
import threading
import urllib.request
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry import trace

import unified_obs as obs

tel = obs.setup(
    service_name="demo-shop",
    service_version="1.0.0",
    environment="dev",
    traces_exporter="console",
    log_format="json",
)
log = obs.get_logger("demo")
tracer = trace.get_tracer("demo")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A tiny WSGI shop: every request gets a span and a log line with its trace id."""
    path = environ["PATH_INFO"]
    with tracer.start_as_current_span(f"GET {path}"), obs.bound(path=path):
        log.info("request.received", method=environ["REQUEST_METHOD"])
        body = b"ok\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    """Serve, drive a few requests, shut down."""
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("service.started", url=f"http://127.0.0.1:{port}/")
    if "--serve" in sys.argv:
        threading.Event().wait()
    for path in ("/", "/orders/42", "/cart"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
            response.read()
    server.shutdown()
    result = tel.shutdown(timeout=5)
    print(f"shutdown: {dict(result.outcomes)} in {result.elapsed:.3f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
