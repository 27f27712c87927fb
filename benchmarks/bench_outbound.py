"""Outbound HTTP overhead per httpx call: no instrumentation, OpenTelemetry contrib's httpx
instrumentation, and our hook, measured side by side in the same run.

The budget (issue 25): the cost our hook *adds* to a call is at most half of what
opentelemetry-instrumentation-httpx adds, ``(ours - plain) / (otel - plain) <= 0.5``.

Two groups.  "local server": a real keep-alive HTTP/1.1 server in a child process on
127.0.0.1 answers ``GET /``; each case sends ``CALLS`` requests through its own
``httpx.Client`` per round (the harness shuffles the cases every round), timed by this
process's CPU time (``time.process_time``: the client's work, all its threads included,
without the waits that make wall time on the shared 2-core VM swing by 2x), and the
added-cost ratio is computed per round, reported with its 95 % interval.  "no network":
the same three paths over a transport that answers at once, timed by the wall clock.

Every span is sampled and goes through a batch processor into a dropping exporter: ours
on the provider ``setup()`` builds, contrib's on a stock SDK ``TracerProvider`` with an
SDK ``MeterProvider`` (a reader attached, so its histogram really records), in the stable
HTTP conventions (``OTEL_SEMCONV_STABILITY_OPT_IN=http``) that ours emits.  Run:
``python -m benchmarks --only outbound``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import unified_obs
from benchmarks._harness import Group, ratio_interval, verdict
from benchmarks.bench_middleware import _DropSpans
from unified_obs.outbound import _call, _httpx
from unified_obs.testing import reset
from unified_obs.tracing import LeanBatchSpanProcessor

BUDGET: Final = 0.5
CALLS: Final = 300
_CASES: Final = ("plain", "otel", "unified_obs")
_SERVER: Final = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body in one write: no delayed-ACK stall
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

_original_handle_request: Final = httpx.HTTPTransport.handle_request


class _PlainTransport(httpx.HTTPTransport):
    """httpx's transport as it is without our hook (which sits on ``HTTPTransport`` only)."""

    handle_request = _original_handle_request


class _InstantTransport(httpx.HTTPTransport):
    """Answers every request at once with 200, without a network."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok", request=request)


class _Bench:
    """Clients, the server and per-round timings for one group."""

    def __init__(self, network: bool) -> None:
        self.network = network
        self.samples: dict[str, list[float]] = {name: [] for name in _CASES}
        self.clients: dict[str, httpx.Client] = {}
        self.cleanup: list[Callable[[], Any]] = []
        self.url = "http://127.0.0.1:9/"
        where = "local server, client CPU per call" if network else "no network, wall time"
        self.group = Group(
            title=f"outbound httpx call ({where}), {CALLS} calls per case per round",
            cases={name: self._case(name) for name in _CASES},
            anchor="plain",
            setup=self.setup,
            teardown=self.teardown,
            self_timed=True,
        )

    def _case(self, name: str) -> Callable[[], float]:
        clock = time.process_time if self.network else time.perf_counter

        def case() -> float:
            get, url = self.clients[name].get, self.url
            start = clock()
            for _ in range(CALLS):
                get(url)
            per_call = (clock() - start) / CALLS
            self.samples[name].append(per_call)
            return per_call

        return case

    def setup(self) -> None:
        """Start the server (network group), set up unified_obs and build the three clients."""
        reset()
        if self.network:
            self._start_server()
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
        tel = unified_obs.setup(
            environ={},
            service_name="bench",
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            log_level="warning",
            handle_signals=False,
        )
        assert tel.tracer_provider is not None
        tel.tracer_provider.add_span_processor(LeanBatchSpanProcessor(_DropSpans()))
        self.clients = {name: self._client(name) for name in _CASES}
        for client in self.clients.values():
            client.get(self.url)  # warm-up: the connection is open before timing

    def _start_server(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        self.url = f"http://127.0.0.1:{int(child.stdout.readline())}/"
        self.cleanup.append(lambda: _stop(child))

    def _client(self, name: str) -> httpx.Client:
        transport_type: type[httpx.HTTPTransport] = (
            _PlainTransport if self.network else _InstantTransport
        )
        if name == "unified_obs":  # our hook, on a class of its own (see _PlainTransport)
            hook = _httpx._sync_hook(transport_type.handle_request, _call.ClientRecorder())
            transport_type = type("Hooked", (transport_type,), {"handle_request": hook})
        client = httpx.Client(transport=transport_type())
        if name == "otel":
            self._instrument_with_contrib(client)
        self.cleanup.append(client.close)
        return client

    def _instrument_with_contrib(self, client: httpx.Client) -> None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        stock = TracerProvider(shutdown_on_exit=False)
        stock.add_span_processor(BatchSpanProcessor(_DropSpans()))
        meters = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
        HTTPXClientInstrumentor.instrument_client(
            client, tracer_provider=stock, meter_provider=meters
        )
        self.cleanup += [stock.shutdown, meters.shutdown]

    def teardown(self) -> None:
        """Close everything and put the added-cost summary in the group's notes."""
        for step in reversed(self.cleanup):
            step()
        self.cleanup.clear()
        os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
        reset()
        self.group.notes = self.summary()

    def summary(self) -> str:
        """Added cost per call and the per-round ratio ours/otel with its 95 % interval."""
        plain, otel, ours = (self.samples[name] for name in _CASES)
        added_otel = [o - p for o, p in zip(otel, plain, strict=True)]
        added_ours = [u - p for u, p in zip(ours, plain, strict=True)]
        ratios = [u / o for u, o in zip(added_ours, added_otel, strict=True) if o > 0]
        mean, low, high = ratio_interval(ratios)
        return (
            f"Added per call vs plain (mean of rounds; plain {_us(plain):.1f} µs): "
            f"otel {_us(added_otel):.1f} µs, unified_obs {_us(added_ours):.1f} µs.\n"
            f"Added-cost ratio unified_obs/otel {mean:.2f} (95 % {low:.2f}-{high:.2f}) — "
            f"{verdict((mean, low, high), BUDGET)} (budget <= {BUDGET})"
        )


def _stop(child: subprocess.Popen[str]) -> None:
    """Terminate the server and reap it."""
    child.terminate()
    child.wait(10)


def _us(seconds: list[float]) -> float:
    return sum(seconds) / len(seconds) * 1e6


def groups() -> list[Group]:
    """The local-server group (the budget) and the no-network group (CPU only)."""
    return [_Bench(network=True).group, _Bench(network=False).group]
