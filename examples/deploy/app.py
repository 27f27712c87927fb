"""The service the deploy examples run: probes, a warm-up, a readiness check, graceful exit.

Run locally (the OpenTelemetry Collector from ``collector.yaml`` on localhost:4318):

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 UNIFIED_OBS_DRAIN_DELAY=2 \\
        uvicorn examples.deploy.app:app --host 127.0.0.1 --port 8000 \\
        --timeout-graceful-shutdown 15

Then ``curl -i localhost:8000/readyz``, ``curl localhost:8000/metrics``, and stop it with
Ctrl-C or ``kill -TERM``: readiness turns 503 at once, requests in flight finish, spans,
metrics and logs are flushed, and the process exits.
"""

from __future__ import annotations

import asyncio

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware, Receive, Scope, Send

tel = obs.setup(service_name="shop", service_version="1.0.0")
log = obs.get_logger("shop")
orders = obs.counter("shop.orders", "Orders placed")
prices: dict[str, int] = {}


async def load_prices() -> None:
    """Warm-up: the startup probe fails (and no traffic arrives) until this has finished."""
    await asyncio.sleep(1.0)  # stands for filling a cache or opening a connection pool
    prices.update(apple=3, pear=4)


tel.health.add_warmup("prices", load_prices)


@tel.health.check("database", timeout=0.5)
async def database_reachable() -> bool:
    """Readiness: a cheap round trip to a dependency (a ``SELECT 1`` in a real service)."""
    await asyncio.sleep(0.001)
    return True


@tel.on_shutdown
def goodbye() -> None:
    """Runs once, after in-flight requests finished and before telemetry is flushed."""
    log.info("shop.stopping", prices=len(prices))


async def shop(scope: Scope, receive: Receive, send: Send) -> None:
    """A tiny ASGI app: ``/order`` takes 200 ms, everything else answers at once."""
    if scope["type"] == "lifespan":  # nothing of its own to start; the middleware reports it
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/order":
        await asyncio.sleep(0.2)
        orders.inc()
        log.info("order.placed", item="apple", price=prices.get("apple"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok\n"})


def route(scope: Scope) -> str | None:
    """The route template of a request (a framework's router gives it without this);
    the SLOs in ``slo.yml`` are about ``/order``."""
    return "/order" if scope["path"] == "/order" else None


app = ObservabilityMiddleware(shop, route_resolver=route)
