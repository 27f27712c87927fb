"""A small Starlette shop under uvicorn, showing traces, metrics and logs with no backend.

Run: ``./run demo`` (or ``python examples/service.py --serve`` to keep it running and
try ``curl -H 'X-Request-ID: my-id' http://127.0.0.1:<port>/orders/42`` yourself).

It starts uvicorn on 127.0.0.1 (a port the OS picks) with the app wrapped in
``unified_obs.asgi.ObservabilityMiddleware``, sends itself a few requests, prints an
excerpt of ``/metrics``, and shuts down gracefully.  Spans go to the console exporter,
logs are JSON lines on stdout: every line of a request carries its trace id, span id
and request id, and the access log adds one line per request.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import urllib.error
import urllib.request

import uvicorn
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware

tel = obs.setup(
    service_name="demo-shop",
    service_version="1.0.0",
    environment="dev",
    traces_exporter="console",
    log_format="json",
)
log = obs.get_logger("demo")
tracer = trace.get_tracer("demo")


async def get_order(request: Request) -> Response:
    """One order: a child span for the lookup and a log line inside the request."""
    order_id = request.path_params["order_id"]
    with tracer.start_as_current_span("db.load_order"):
        log.info("order.loaded", order_id=order_id)
    return JSONResponse({"id": order_id, "status": "paid"})


async def checkout(request: Request) -> Response:
    """Always fails: the span gets error.type, the access log line the traceback."""
    raise RuntimeError("payment provider unavailable")


app = ObservabilityMiddleware(
    Starlette(
        routes=[
            Route("/orders/{order_id:int}", get_order),
            Route("/checkout", checkout, methods=["POST"]),
        ]
    ),
    traceresponse=True,
)


def fetch(url: str, method: str = "GET", request_id: str = "") -> tuple[int, dict[str, str], str]:
    """A plain HTTP request (run in a thread): status, headers and body."""
    headers = {"X-Request-ID": request_id} if request_id else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


async def drive(base: str) -> None:
    """Send a few requests, then print what /metrics says about them."""
    for n, path in enumerate(("/orders/42", "/orders/7", "/nope"), start=1):
        method = "GET"
        status, headers, _ = await asyncio.to_thread(fetch, base + path, method, f"demo-{n}")
        print(
            f"{method} {path} -> {status} x-request-id={headers.get('x-request-id')}",
            file=sys.stderr,
        )
    status, _, _ = await asyncio.to_thread(fetch, base + "/checkout", "POST")
    print(f"POST /checkout -> {status}", file=sys.stderr)
    _, _, text = await asyncio.to_thread(fetch, base + "/metrics")
    print("--- /metrics (excerpt) ---", file=sys.stderr)
    for line in text.splitlines():
        if line.startswith("http_server_request_duration_seconds_count"):
            print(line, file=sys.stderr)


async def main() -> None:
    """Serve on 127.0.0.1, drive requests, shut down (lifespan runs the shutdown sequence)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # log_config=None: uvicorn keeps unified_obs's logging (JSON lines, trace ids);
    # access_log=False: the middleware writes the access log.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    log.info("service.started", url=base)
    if "--serve" in sys.argv:
        await serving
        return
    await drive(base)
    server.should_exit = True
    await serving
    print(
        f"shutdown: done in a lifespan sequence, telemetry flushed: {tel.is_shut_down}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    asyncio.run(main())
