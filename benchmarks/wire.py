"""Over the wire: uvicorn (one worker) on 127.0.0.1 under ``wrk``, bare vs unified_obs vs
opentelemetry-instrumentation-asgi, interleaved.  OTel's middleware runs twice: as
installed (``otel-asgi-default``: a SERVER span plus one INTERNAL span per ``send`` and
``receive``, what the issue's "2,600 req/s" measured) and with those spans excluded
(``otel-asgi``, the in-process benchmark's comparison).

    python -m benchmarks.wire [--runs 15] [--duration 2] [--connections 32] [--tuning]

``--tuning`` adds ours with the two throughput knobs docs/benchmarks.md names, each alone:
``unified_obs-sampled-10pc`` (``traces_sampler="parentbased_traceidratio"``,
``traces_sampler_arg=0.1``) and ``unified_obs-no-access-log`` (``access_log=False``);
and ``bare-uvicorn-access-log``, the bare app with uvicorn's own access log on, as
uvicorn runs by default (the other variants run with ``--no-access-log``).

Needs ``wrk`` (Debian: ``apt-get install wrk``).  Every instrumented variant samples its
span into a batch processor with a dropping exporter (ours: the ``LeanBatchSpanProcessor``
``setup()`` installs; OpenTelemetry's: the SDK's) and records metrics; ours also
writes its JSON access log line (to /dev/null, the server's stdout).

All four servers start first and each gets a 2 s warm-up (discarded).  Then each round
loads every variant for one short bounded slice (``wrk -t1 -cN -dS --latency``), the
order rotating from round to round, while the others sit idle.  Short interleaved
slices put every variant through the same moments of a noisy machine: run as whole
10 s runs, one after another, the same code read 0.41x and 0.50x bare in tables minutes
apart.  Server CPU per request comes from /proc.  Each budget's verdict reads the
per-round ratios: PASS when their mean's 95 % interval clears the line, FAIL when it
lies below, WITHIN NOISE otherwise.  This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._harness import ratio_interval

VARIANTS = ("bare", "unified_obs", "otel-asgi", "otel-asgi-default")
SAMPLED = "unified_obs-sampled-10pc"
NO_ACCESS_LOG = "unified_obs-no-access-log"
UVICORN_LOG = "bare-uvicorn-access-log"
_QUIET = ("--no-access-log", "--log-level", "warning")
TUNING = (SAMPLED, NO_ACCESS_LOG, UVICORN_LOG)
ROOT = Path(__file__).resolve().parents[1]


def app() -> Any:
    """The ASGI app uvicorn serves (``--factory``); ``BENCH_VARIANT`` picks the wrapper."""
    from benchmarks.bench_middleware import _DropMetrics, _DropSpans, raw_asgi

    variant = os.environ.get("BENCH_VARIANT", "bare")
    if variant.startswith("unified_obs"):
        import unified_obs
        from unified_obs.asgi import ObservabilityMiddleware
        from unified_obs.tracing import LeanBatchSpanProcessor

        sampler: dict[str, Any] = {
            "traces_sampler": "parentbased_traceidratio",
            "traces_sampler_arg": 0.1,
        }
        tel = unified_obs.setup(
            service_name="wire",
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            log_format="json",
            **(sampler if variant == SAMPLED else {}),
        )
        assert tel.tracer_provider is not None
        # the batch processor setup() installs for an exporter (a subclass of the SDK's)
        tel.tracer_provider.add_span_processor(LeanBatchSpanProcessor(_DropSpans()))
        return ObservabilityMiddleware(raw_asgi, access_log=variant != NO_ACCESS_LOG)
    if variant.startswith("otel-asgi"):
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer = TracerProvider()
        tracer.add_span_processor(BatchSpanProcessor(_DropSpans()))
        reader = PeriodicExportingMetricReader(_DropMetrics(), export_interval_millis=60_000)
        return OpenTelemetryMiddleware(
            raw_asgi,
            tracer_provider=tracer,
            meter_provider=MeterProvider(metric_readers=[reader]),
            exclude_spans=None if variant == "otel-asgi-default" else ["receive", "send"],
        )
    return raw_asgi


def cpu_seconds(pid: int) -> float:
    """The user + system CPU seconds process ``pid`` has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, connections: int, duration: int) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    latency = dict(re.findall(r"\s(50|99)%\s+([\d.]+\w+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "failed": sum(map(int, errors.groups() if errors else ()))
        + (int(non_2xx.group(1)) if non_2xx else 0),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency.get("50", "0ms")),
        "p99_ms": _ms(latency.get("99", "0ms")),
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _free_port() -> int:
    # uvicorn --fd treats the socket as AF_UNIX and skips TCP_NODELAY (40 ms delayed ACKs),
    # so the benchmark hands uvicorn a port the OS picked instead.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(
    variant: str, target: str = "benchmarks.wire:app", extra_env: Mapping[str, str] | None = None
) -> Iterator[tuple[int, str]]:
    """uvicorn serving ``variant`` of the ``target`` factory (with ``extra_env`` added to
    its environment) on a port the OS picked: ``(pid, url)`` once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        # uvicorn's own access log (an INFO record per request), as installed
        *(("--log-level", "info") if variant == UVICORN_LOG else _QUIET),
    ]
    env = {**os.environ, **(extra_env or {}), "BENCH_VARIANT": variant}
    with open(os.devnull, "wb") as null:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=null, stderr=subprocess.STDOUT)
    try:
        _wait(url, server)
        yield server.pid, url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure(pid: int, url: str, connections: int, duration: int) -> dict[str, float]:
    """One bounded ``wrk`` slice against a running server, with the server's CPU time."""
    before = cpu_seconds(pid)
    result = _wrk(url, connections, duration)
    result["cpu_s"] = cpu_seconds(pid) - before
    return result


def _wait(url: str, server: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def main(argv: Sequence[str] | None = None) -> None:
    """Serve every variant at once; in each round, load each for one slice (the order
    rotating from round to round); print totals and the per-round ratios as Markdown."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wire")
    parser.add_argument("--runs", type=int, default=15, help="rounds (one slice per variant)")
    parser.add_argument("--duration", type=int, default=2, help="seconds per slice")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tuning", action="store_true", help="add ours with each knob")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    variants = VARIANTS + TUNING if args.tuning else VARIANTS
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with contextlib.ExitStack() as stack:
        servers = {v: stack.enter_context(serving(v)) for v in variants}
        for _, url in servers.values():
            _wrk(url, args.connections, 2)  # warm-up, discarded
        for run in range(args.runs):
            shift = run % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                pid, url = servers[variant]
                results[variant].append(measure(pid, url, args.connections, args.duration))
    _print(results, args)


def _print(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    rps = {v: statistics.fmean(r["rps"] for r in runs) for v, runs in results.items()}
    print(
        f"\nuvicorn 1 worker (--http httptools), wrk -t1 -c{args.connections}, {args.runs} "
        f"rounds of one {args.duration} s slice per variant, interleaved (means)\n"
    )
    print(
        "| variant | req/s | p50 ms | p99 ms | server CPU µs/req | × bare | × otel-asgi "
        "(default) | × otel-asgi (no send/receive spans) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, runs in results.items():
        cpu = sum(r["cpu_s"] for r in runs) / sum(r["requests"] for r in runs) * 1e6
        print(
            f"| {variant} | {rps[variant]:,.0f} | "
            f"{statistics.median(r['p50_ms'] for r in runs):.2f} | "
            f"{statistics.median(r['p99_ms'] for r in runs):.2f} | {cpu:.0f} | "
            f"{rps[variant] / rps['bare']:.2f} | {rps[variant] / rps['otel-asgi-default']:.2f} | "
            f"{rps[variant] / rps['otel-asgi']:.2f} |"
        )
    print()
    bare = _per_round(results, "bare")
    against_bare = _verdict(bare, 0.45)
    print(f"unified_obs / bare: {_describe(bare)}")
    for against in ("otel-asgi-default", "otel-asgi"):
        otel = _per_round(results, against)
        print(f"unified_obs / {against}: {_describe(otel)}")
        verdict = _combine(against_bare, _verdict(otel, 3.0))
        print(f"budget (>= 0.45x bare and >= 3x {against}): {verdict}")
    for tuned in TUNING:
        if tuned in results:
            print(f"{tuned} / bare: {_describe(_per_round(results, 'bare', tuned))}")
    if UVICORN_LOG in results:
        print(f"unified_obs / {UVICORN_LOG}: {_describe(_per_round(results, UVICORN_LOG))}")


def _per_round(
    results: dict[str, list[dict[str, float]]], against: str, ours: str = "unified_obs"
) -> list[float]:
    """``ours`` over ``against`` in each round (the two slices minutes apart at most)."""
    pairs = zip(results[ours], results[against], strict=True)
    return [mine["rps"] / other["rps"] for mine, other in pairs]


def _describe(ratios: list[float]) -> str:
    mean, low, high = ratio_interval(ratios)
    return (
        f"per round {min(ratios):.2f}–{max(ratios):.2f}, "
        f"mean {mean:.3f} (95 % interval {low:.3f}–{high:.3f})"
    )


def _verdict(ratios: list[float], target: float) -> str:
    """PASS when the whole interval is at or above ``target``, FAIL when it is below,
    else WITHIN NOISE: more rounds, or a quieter machine, would be needed to tell."""
    _, low, high = ratio_interval(ratios)
    return "PASS" if low >= target else "FAIL" if high < target else "WITHIN NOISE"


def _combine(first: str, second: str) -> str:
    if "FAIL" in (first, second):
        return "FAIL"
    return "PASS" if first == second == "PASS" else "WITHIN NOISE"


if __name__ == "__main__":
    main()
