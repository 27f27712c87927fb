"""A circuit breaker proven by fault injection: injected payment failures trip the breaker,
the service answers from its fallback, and ``/metrics`` shows all of it.

Run: ``python examples/breaker_faults.py``.

A Starlette shop under uvicorn on 127.0.0.1 calls a payment provider through
``@breaker("payments")`` around ``@faults.point("payments")``.  Fault injection is armed
by ``setup(faults_enabled=True)`` (in a real service: ``UNIFIED_OBS_FAULTS_ENABLED=true``
for the experiment only) with one rule: 60 % of the calls to ``payments`` raise.  The
script sends 30 checkouts: once 10 calls are in the window and half of them failed, the
breaker opens and later checkouts get the fallback (HTTP 503) without calling the
provider.  It then prints the breaker and fault lines of ``/metrics``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import urllib.error
import urllib.request

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.resilience import CircuitOpenError, breaker, faults

tel = obs.setup(
    service_name="chaos-shop",
    environment="dev",
    log_format="json",
    faults_enabled=True,  # the experiment's switch; off by default
)
faults.configure(
    faults.FaultRule(kind="error", percentage=60, targets=("payments",)),
    experiment_id="payments-outage-drill",
)
log = obs.get_logger("shop")


@breaker("payments", window_size=10, minimum_calls=10, failure_rate_threshold=0.5)
@faults.point("payments")
async def charge(amount: int) -> str:
    """The payment provider (here it always works; the faults are injected)."""
    return f"charged {amount}"


async def checkout(request: Request) -> Response:
    """Charge, or answer from the fallback while the breaker is open."""
    try:
        receipt = await charge(42)
    except CircuitOpenError as exc:
        return JSONResponse({"error": "payments unavailable", "retry_after": exc.retry_after}, 503)
    except faults.InjectedFault:
        return JSONResponse({"error": "payment failed"}, 502)
    return JSONResponse({"receipt": receipt})


app = ObservabilityMiddleware(Starlette(routes=[Route("/checkout", checkout, methods=["POST"])]))


def post(url: str) -> int:
    """One checkout (run in a thread): the status code."""
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def get(url: str) -> str:
    """A GET (run in a thread): the body."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def drive(base: str) -> None:
    """30 checkouts, then the breaker and fault series of /metrics."""
    statuses = [await asyncio.to_thread(post, base + "/checkout") for _ in range(30)]
    print("checkout statuses:", " ".join(map(str, statuses)), file=sys.stderr)
    text = await asyncio.to_thread(get, base + "/metrics")
    print("--- /metrics (breaker and faults) ---", file=sys.stderr)
    for line in text.splitlines():
        ours = line.startswith(("unified_obs_circuit_breaker", "unified_obs_faults"))
        if ours and not any(part in line for part in ("_bucket", "_created", "_sum")):
            print(line.replace('otel_scope_name="unified_obs",', ""), file=sys.stderr)


async def main() -> None:
    """Serve on 127.0.0.1, drive the checkouts, shut down."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    await drive(base)
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
