"""gRPC server interceptor overhead per unary call, sync and ``grpc.aio``.

Three in-process servers on 127.0.0.1 answer the same unary call through a real channel:
no interceptor (``plain``), opentelemetry-instrumentation-grpc's server interceptor (span
only, ``otel``) and ours (span + ``rpc.server.call.duration`` + one JSON log line,
``unified_obs``).  The harness alternates the cases; each case also records its own
per-call times, from which the notes report the *added* cost:
``(unified_obs - plain) / (otel - plain)`` with the budget of 0.7.

The client calls from the servers' own process, so a call's latency also carries the
hand-overs of one GIL between the client's and the servers' threads, which swing the
channel groups' ratios by about +-0.1 between runs.  Those groups report their ratio for
information; the budget is held to the handler-only group here and to the server CPU per
call that ``python -m benchmarks.grpc_wire`` measures with the client in another process.

Every span is sampled and goes through a batch processor into a dropping exporter: ours
(the ``LeanBatchSpanProcessor`` ``setup()`` installs) on the provider ``setup()``
builds, OpenTelemetry's on a stock SDK ``TracerProvider`` of its own (what a user of
that instrumentation runs). Log lines go to ``/dev/null`` through a real file (the write
is still paid). Two more groups call the wrapped handler directly with a stand-in
context (sync; aio, the coroutine driven to its end): the interceptors' own CPU cost
without the network and the threads that contend for the GIL around it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, Final, NamedTuple, TextIO

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor as otel_aio_interceptor
from opentelemetry.instrumentation.grpc import server_interceptor as otel_interceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import unified_obs
from benchmarks._harness import Group
from benchmarks.bench_middleware import _DropSpans
from unified_obs.grpc import aio_server_interceptor, server_interceptor
from unified_obs.testing import reset
from unified_obs.tracing import LeanBatchSpanProcessor

BUDGET: Final = 0.7
_CASES: Final = ("plain", "otel", "unified_obs", "unified_obs_no_log")
METHOD: Final = "/bench.Echo/Unary"
_JUDGED_ELSEWHERE: Final = "server CPU per call: python -m benchmarks.grpc_wire"


def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _aecho(request: bytes, context: Any) -> bytes:
    return request


def echo_handlers(aio: bool) -> grpc.GenericRpcHandler:
    """The benchmarked service: ``METHOD`` answers with its request (sync or aio)."""
    return grpc.method_handlers_generic_handler(
        "bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(_aecho if aio else _echo)}
    )


def our_pipeline() -> None:
    """``unified_obs.setup()`` with no exporters and JSON logs, every span sampled into a
    batch processor with a dropping exporter."""
    tel = unified_obs.setup(
        environ={},
        service_name="bench",
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        log_format="json",
        handle_signals=False,
    )
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(LeanBatchSpanProcessor(_DropSpans()))


def stock_provider() -> TracerProvider:
    """A stock SDK provider with the same span pipeline, for OpenTelemetry's interceptor
    (what a user of that instrumentation runs)."""
    stock = TracerProvider(shutdown_on_exit=False)
    stock.add_span_processor(BatchSpanProcessor(_DropSpans()))
    return stock


class _Bench:
    """Servers, channels and self-timed cases for one flavour (sync or aio)."""

    judged = False
    """Whether the group's ratio is held to the budget (see the module docstring)."""

    def __init__(self, aio: bool) -> None:
        self.aio = aio
        self.samples: dict[str, list[int]] = {}
        self.cleanup: list[Callable[[], Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stdout: TextIO | None = None
        self.group = Group(
            title=f"gRPC server interceptor, unary call ({'grpc.aio' if aio else 'sync grpc'})",
            cases={name: self._case(name) for name in _CASES},
            anchor="plain",
            setup=self.setup,
            teardown=self.teardown,
        )
        self._calls: dict[str, Callable[[], Any]] = {}

    def _case(self, name: str) -> Callable[[], None]:
        samples = self.samples.setdefault(name, [])
        clock = time.perf_counter_ns

        def case() -> None:
            start = clock()
            self._calls[name]()
            samples.append(clock() - start)

        return case

    def setup(self) -> None:
        """Set up unified_obs (no exporters, JSON logs to /dev/null) and start the servers."""
        reset()
        self.stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115
        our_pipeline()
        stock = stock_provider()
        self.cleanup.append(stock.shutdown)
        if self.aio:
            self.loop = asyncio.new_event_loop()
            otel = otel_aio_interceptor(tracer_provider=stock)  # type: ignore[no-untyped-call]
            ours, quiet = aio_server_interceptor(), aio_server_interceptor(log_calls=False)
        else:
            otel = otel_interceptor(tracer_provider=stock)  # type: ignore[no-untyped-call]
            ours, quiet = server_interceptor(), server_interceptor(log_calls=False)
        interceptors = {"plain": [], "otel": [otel], "unified_obs": [ours],
                        "unified_obs_no_log": [quiet]}  # fmt: skip
        for name, chosen in interceptors.items():
            self._calls[name] = self._make_call(chosen)

    def _make_call(self, interceptors: list[Any]) -> Callable[[], Any]:
        if self.loop is not None:
            return self.loop.run_until_complete(self._aio_call(interceptors))
        return self._sync_call(interceptors)

    def _sync_call(self, interceptors: list[Any]) -> Callable[[], Any]:
        server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=interceptors)
        server.add_generic_rpc_handlers((echo_handlers(aio=False),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.cleanup += [channel.close, lambda: server.stop(None).wait()]
        stub = channel.unary_unary(METHOD)
        stub(b"warm-up")
        return lambda: stub(b"ping")

    async def _aio_call(self, interceptors: list[Any]) -> Callable[[], Any]:
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers((echo_handlers(aio=True),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        loop = self.loop
        assert loop is not None
        self.cleanup += [
            lambda: loop.run_until_complete(channel.close()),
            lambda: loop.run_until_complete(server.stop(None)),
        ]
        stub = channel.unary_unary(METHOD)
        await stub(b"warm-up")
        return lambda: loop.run_until_complete(stub(b"ping"))

    def teardown(self) -> None:
        """Stop everything, restore stdout and put the overhead summary in the notes."""
        for step in reversed(self.cleanup):
            step()
        if self.loop is not None:
            self.loop.close()
        reset()
        if self.stdout is not None:
            sys.stdout.close()
            sys.stdout = self.stdout
        self.group.notes = self.summary()

    def summary(self) -> str:
        """Added cost per call, from the cases' own per-call medians."""
        median = {name: statistics.median(v) for name, v in self.samples.items() if v}
        base = median["plain"]
        otel = median["otel"] - base
        lines = [
            f"Added per call vs plain (median of every call; plain {base / 1000:.1f} µs), "
            f"otel {otel / 1000:.1f} µs:",
        ]
        for name in ("unified_obs", "unified_obs_no_log"):
            ours = median[name] - base
            ratio = ours / otel if otel > 0 else float("inf")
            if name != "unified_obs":
                budget = "info"
            elif self.judged:
                budget = f"{'PASS' if ratio <= BUDGET else 'FAIL'} (budget <= {BUDGET})"
            else:
                budget = f"info: latency shares the GIL with this client ({_JUDGED_ELSEWHERE})"
            lines.append(
                f"- {name}: {ours / 1000:.1f} µs, added-cost ratio to otel {ratio:.2f} — {budget}"
            )
        return "\n".join(lines)


class _Metadatum(NamedTuple):
    key: str
    value: str


class _FakeContext:
    """What a sync unary handler reads from its context, without a network behind it."""

    def invocation_metadata(self) -> tuple[_Metadatum, ...]:
        return (_Metadatum("user-agent", "grpc-python/bench"),)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def code(self) -> None:
        return None

    def details(self) -> None:
        return None

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> None:
        return None

    def set_code(self, code: Any) -> None:
        pass

    def set_details(self, details: str) -> None:
        pass

    def trailing_metadata(self) -> tuple[()]:
        return ()


class _HandlerDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[_Metadatum, ...]


class _HandlerBench(_Bench):
    """The interceptors' own CPU cost: the wrapped handler called directly (sync)."""

    judged = True

    def __init__(self) -> None:
        super().__init__(aio=False)
        self.group.title = "gRPC server interceptor, handler only (sync, no network)"

    def _make_call(self, interceptors: list[Any]) -> Callable[[], Any]:
        handler = grpc.unary_unary_rpc_method_handler(_echo)
        details = _HandlerDetails(METHOD, _FakeContext().invocation_metadata())
        for interceptor in interceptors:
            handler = interceptor.intercept_service(lambda _, h=handler: h, details)
        behavior, context = handler.unary_unary, _FakeContext()
        return lambda: behavior(b"ping", context)


class _AioHandlerBench(_Bench):
    """The aio interceptors' own CPU cost: the wrapped coroutine handler driven directly
    (nothing in it suspends, so one ``send`` runs a call to its end)."""

    judged = True

    def __init__(self) -> None:
        super().__init__(aio=True)
        self.group.title = "gRPC server interceptor, handler only (grpc.aio, no network)"

    def _make_call(self, interceptors: list[Any]) -> Callable[[], Any]:
        loop = self.loop
        assert loop is not None
        handler = loop.run_until_complete(self._wrap(interceptors))
        behavior, context = handler.unary_unary, _FakeContext()

        def call() -> None:
            coroutine = behavior(b"ping", context)
            try:
                coroutine.send(None)
            except StopIteration:
                return
            coroutine.close()
            raise RuntimeError("the handler suspended")

        return call

    @staticmethod
    async def _wrap(interceptors: list[Any]) -> Any:
        handler = grpc.unary_unary_rpc_method_handler(_aecho)
        details = _HandlerDetails(METHOD, _FakeContext().invocation_metadata())
        for interceptor in interceptors:

            async def inner(_: Any, wrapped: Any = handler) -> Any:
                return wrapped

            handler = await interceptor.intercept_service(inner, details)
        return handler


def groups() -> list[Group]:
    """Sync and aio unary-call groups over a channel, and the handler-only groups."""
    return [
        _Bench(aio=False).group,
        _Bench(aio=True).group,
        _HandlerBench().group,
        _AioHandlerBench().group,
    ]
