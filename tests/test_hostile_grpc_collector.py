"""The OTLP/gRPC exporter against a collector answering every status code (reliability
plan T-05, the gRPC half), from one real process.

The collector in this test aborts each export with the status code named in the span it
carries; the process exports one span per code (export timeout 2 s) and reports how long
each flush took.  The six retryable codes are retried within the timeout; the nine
others get exactly one attempt; RESOURCE_EXHAUSTED is retryable only with ``RetryInfo``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc

EXPORT_TIMEOUT = 2.0
RETRYABLE: tuple[str, ...] = (
    "CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS",
)  # fmt: skip
NOT_RETRYABLE: tuple[str, ...] = (
    "UNKNOWN", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "UNAUTHENTICATED", "FAILED_PRECONDITION", "UNIMPLEMENTED", "INTERNAL",
)  # fmt: skip
CODES = (*RETRYABLE, *NOT_RETRYABLE, "RESOURCE_EXHAUSTED")

SCRIPT = """
import json, sys, time
import unified_obs as obs
from opentelemetry import trace

tel = obs.setup(
    environ={}, service_name="grpc-codes", otlp_endpoint=sys.argv[1], otlp_protocol="grpc",
    traces_exporter="otlp", logs_exporter="none", metrics_exporter="none",
    handle_signals=False, otlp_timeout=EXPORT_TIMEOUT, log_level="critical",
)
elapsed = {}
for code in sys.argv[2].split(","):
    with trace.get_tracer("codes").start_as_current_span(code):
        pass
    start = time.monotonic()
    flushed = tel.force_flush(timeout=30.0)
    elapsed[code] = [time.monotonic() - start, flushed.ok]
print(json.dumps(elapsed))
"""


class _Collector(service_grpc.TraceServiceServicer):
    """Aborts each export with the status code its span is named after."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def Export(self, request: Any, context: Any) -> Any:
        """Count the attempt, then abort with the named code."""
        name = request.resource_spans[0].scope_spans[0].spans[0].name
        self.attempts[name] = self.attempts.get(name, 0) + 1
        context.abort(getattr(grpc.StatusCode, name), "scripted")
        return service.ExportTraceServiceResponse()


@contextmanager
def _grpc_collector() -> Iterator[tuple[str, _Collector]]:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", collector
    finally:
        server.stop(0)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, bool, int]]:
    """code -> (flush seconds, flush ok, attempts the collector saw)."""
    script: Path = tmp_path_factory.mktemp("grpc") / "codes.py"
    script.write_text(SCRIPT.replace("EXPORT_TIMEOUT", str(EXPORT_TIMEOUT)))
    with _grpc_collector() as (endpoint, collector):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(script), endpoint, ",".join(CODES)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert time.monotonic() - started < 120
        attempts = dict(collector.attempts)
    assert done.returncode == 0, done.stderr[-3000:]
    elapsed = json.loads(done.stdout.strip().splitlines()[-1])
    return {code: (*elapsed[code], attempts.get(code, 0)) for code in CODES}


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_codes_are_retried_within_the_timeout(
    report: dict[str, tuple[float, bool, int]], code: str
) -> None:
    """A retryable code: at least two attempts, a failed flush, within the export
    timeout (+ 0.5 s)."""
    seconds, ok, attempts = report[code]
    assert attempts >= 2
    assert ok is False
    assert seconds <= EXPORT_TIMEOUT + 0.5


@pytest.mark.parametrize("code", NOT_RETRYABLE)
def test_other_codes_get_one_attempt(report: dict[str, tuple[float, bool, int]], code: str) -> None:
    """A code the specification forbids retrying: exactly one attempt, a failed flush."""
    _, ok, attempts = report[code]
    assert attempts == 1
    assert ok is False


@pytest.mark.xfail(
    strict=True,
    reason="the SDK's gRPC exporter retries RESOURCE_EXHAUSTED without RetryInfo "
    "(specification: only with RetryInfo); not fixed here",
)
def test_resource_exhausted_without_retry_info_is_not_retried(
    report: dict[str, tuple[float, bool, int]],
) -> None:
    """RESOURCE_EXHAUSTED with no ``RetryInfo`` in its details: one attempt only."""
    assert report["RESOURCE_EXHAUSTED"][2] == 1
