"""gRPC server interceptors under load from another process: server CPU per unary call.

    python -m benchmarks.grpc_wire [--runs 5] [--duration 10] [--concurrency 16] [--flavour aio]

``bench_grpc`` times calls whose client runs in the server's own process, so client and
server threads take turns on one GIL and each call's latency carries those hand-overs.
Here each server (sync ``grpc.server`` or ``grpc.aio.server``, with no interceptor, with
opentelemetry-instrumentation-grpc's, or with ours) runs in a process of its own on
127.0.0.1, and this process drives it with a ``grpc.aio`` client keeping a fixed number
of unary calls in flight for a bounded time.  The server's CPU time per call (from
/proc) is what an interceptor costs a service; runs alternate the variants and the
table reports medians and the added-CPU ratio ``(ours - plain) / (otel - plain)``.

Spans are sampled into a ``BatchSpanProcessor`` with a dropping exporter on both sides;
our JSON call log goes to the server's stdout (/dev/null).  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor as otel_aio
from opentelemetry.instrumentation.grpc import server_interceptor as otel_sync

from benchmarks.bench_grpc import BUDGET, METHOD, echo_handlers, our_pipeline, stock_provider
from benchmarks.wire import cpu_seconds
from unified_obs.grpc import aio_server_interceptor, server_interceptor

VARIANTS: Final = ("plain", "otel", "unified_obs", "unified_obs_no_log")
FLAVOURS: Final = ("sync", "aio")
ROOT: Final = Path(__file__).resolve().parents[1]


def _interceptors(variant: str, aio: bool) -> list[Any]:
    """The server interceptors of ``variant``, with the span pipeline both sides use."""
    if variant == "plain":
        return []
    if variant == "otel":
        make = otel_aio if aio else otel_sync
        return [make(tracer_provider=stock_provider())]  # type: ignore[no-untyped-call]
    our_pipeline()
    make_ours = aio_server_interceptor if aio else server_interceptor
    return [make_ours(log_calls=variant == "unified_obs")]


def serve(variant: str, flavour: str) -> None:
    """Run one server until stdin closes; print its port on the first line of stdout."""
    aio = flavour == "aio"
    interceptors = _interceptors(variant, aio)
    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the call log goes nowhere
    if aio:
        asyncio.run(_serve_aio(interceptors, out))
        return
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(8), interceptors=interceptors)
    server.add_generic_rpc_handlers((echo_handlers(aio=False),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, file=out, flush=True)
    sys.stdin.read()
    server.stop(None)


async def _serve_aio(interceptors: list[Any], out: Any) -> None:
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers((echo_handlers(aio=True),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, file=out, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(None)


async def _drive(port: int, concurrency: int, seconds: float) -> int:
    """Keep ``concurrency`` unary calls in flight for ``seconds``; the number completed."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(METHOD)
        await stub(b"warm-up")
        deadline = time.monotonic() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await stub(b"ping")
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done


def run_once(variant: str, flavour: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Start the server, warm it up for 1 s, measure ``seconds`` of calls, stop it."""
    argv = [sys.executable, "-m", "benchmarks.grpc_wire", "--serve", variant, flavour]
    server = subprocess.Popen(
        argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        asyncio.run(_drive(port, concurrency, 1.0))
        before = cpu_seconds(server.pid)
        calls = asyncio.run(_drive(port, concurrency, seconds))
        used = cpu_seconds(server.pid) - before
        return {"calls_per_s": calls / seconds, "cpu_us_per_call": used / calls * 1e6}
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Alternate the variants per flavour and print one Markdown table per flavour."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grpc_wire")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--flavour", choices=FLAVOURS, action="append", help="default: both")
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "FLAVOUR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return
    for flavour in args.flavour or FLAVOURS:
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for run in range(args.runs):
            order = VARIANTS[run % len(VARIANTS) :] + VARIANTS[: run % len(VARIANTS)]
            for variant in order:
                results[variant].append(run_once(variant, flavour, args.concurrency, args.duration))
        _print(flavour, results, args)


def _print(flavour: str, results: dict[str, list[dict[str, float]]], args: Any) -> None:
    cpu = {v: statistics.median(r["cpu_us_per_call"] for r in runs) for v, runs in results.items()}
    rate = {v: statistics.median(r["calls_per_s"] for r in runs) for v, runs in results.items()}
    otel = cpu["otel"] - cpu["plain"]
    print(
        f"\n{flavour} server, grpc.aio client in another process, {args.concurrency} calls in "
        f"flight, {args.duration:g} s x {args.runs} alternating runs (medians)\n"
    )
    print("| variant | calls/s | server CPU µs/call | added µs | added / otel's | runs (µs) |")
    print("|---|---:|---:|---:|---:|---|")
    for variant in VARIANTS:
        added = cpu[variant] - cpu["plain"]
        ratio = f"{added / otel:.2f}" if variant != "plain" and otel > 0 else ""
        runs = ", ".join(f"{r['cpu_us_per_call']:.0f}" for r in results[variant])
        print(
            f"| {variant} | {rate[variant]:,.0f} | {cpu[variant]:.0f} | "
            f"{added:.0f} | {ratio} | {runs} |"
        )
    ours = (cpu["unified_obs"] - cpu["plain"]) / otel if otel > 0 else float("inf")
    verdict = "PASS" if ours <= BUDGET else "FAIL"
    print(f"\nbudget (ours <= {BUDGET}x otel's added server CPU): {verdict} ({ours:.2f})")
    print(f"per run: {', '.join(f'{r:.2f}' for r in _run_ratios(results))}")


def _run_ratios(results: dict[str, list[dict[str, float]]]) -> list[float]:
    """Each run's own ratio (its four servers measured back to back)."""
    ratios = []
    for plain, otel, ours in zip(
        results["plain"], results["otel"], results["unified_obs"], strict=True
    ):
        base = plain["cpu_us_per_call"]
        added = otel["cpu_us_per_call"] - base
        ratios.append((ours["cpu_us_per_call"] - base) / added if added > 0 else float("inf"))
    return ratios


if __name__ == "__main__":
    main()
