"""The OTLP/gRPC exporter against a collector answering every status code (reliability
plan T-05, the gRPC half), from one real process.

The collector in this test aborts each export with the status code named in the span it
carries; the process exports one span per code (export timeout 2 s) and reports how long
each flush took.  The six retryable codes are retried within the timeout; the nine
others get exactly one attempt; RESOURCE_EXHAUSTED is retryable only with ``RetryInfo``
(the SDK retries it either way; ``unified_obs._compat.grpc_exporter`` holds the rule), and
then after the delay it names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc

from tests.otlp_receiver import grpc_trace_collector
from unified_obs._compat import _probes, grpc_exporter

EXPORT_TIMEOUT = 2.0
RETRYABLE: tuple[str, ...] = (
    "CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS",
)  # fmt: skip
NOT_RETRYABLE: tuple[str, ...] = (
    "UNKNOWN", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "UNAUTHENTICATED", "FAILED_PRECONDITION", "UNIMPLEMENTED", "INTERNAL",
)  # fmt: skip
WITH_RETRY_INFO = "RESOURCE_EXHAUSTED_WITH_RETRY_INFO"  # RetryInfo: RETRY_DELAY seconds
RETRY_DELAY = 0.3
CODES = (*RETRYABLE, *NOT_RETRYABLE, "RESOURCE_EXHAUSTED", WITH_RETRY_INFO)

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
    """Aborts each export with the status code its span is named after (``WITH_RETRY_INFO``:
    RESOURCE_EXHAUSTED with a ``RetryInfo`` of ``RETRY_DELAY``)."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[float]] = {}

    def Export(self, request: Any, context: Any) -> Any:
        """Note the attempt's time, then abort with the named code."""
        name = request.resource_spans[0].scope_spans[0].spans[0].name
        self.attempts.setdefault(name, []).append(time.monotonic())
        if name == WITH_RETRY_INFO:
            delay = RetryInfo(retry_delay=Duration(nanos=int(RETRY_DELAY * 1e9)))
            context.set_trailing_metadata(
                (("google.rpc.retryinfo-bin", delay.SerializeToString()),)
            )
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "scripted, with RetryInfo")
        context.abort(getattr(grpc.StatusCode, name), "scripted")
        return service.ExportTraceServiceResponse()


Report = dict[str, tuple[float, bool, int, float]]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """code -> (flush seconds, flush ok, attempts the collector saw, seconds from the
    first attempt to the second, 0 when there was none)."""
    script: Path = tmp_path_factory.mktemp("grpc") / "codes.py"
    script.write_text(SCRIPT.replace("EXPORT_TIMEOUT", str(EXPORT_TIMEOUT)))
    collector = _Collector()
    with grpc_trace_collector(collector) as endpoint:
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
    return {code: (*elapsed[code], *_attempts(attempts.get(code, []))) for code in CODES}


def _attempts(times: list[float]) -> tuple[int, float]:
    return len(times), times[1] - times[0] if len(times) > 1 else 0.0


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_codes_are_retried_within_the_timeout(report: Report, code: str) -> None:
    """A retryable code: at least two attempts, a failed flush, within the export
    timeout (+ 0.5 s)."""
    seconds, ok, attempts, _ = report[code]
    assert attempts >= 2
    assert ok is False
    assert seconds <= EXPORT_TIMEOUT + 0.5


@pytest.mark.parametrize("code", NOT_RETRYABLE)
def test_other_codes_get_one_attempt(report: Report, code: str) -> None:
    """A code the specification forbids retrying: exactly one attempt, a failed flush."""
    _, ok, attempts, _ = report[code]
    assert attempts == 1
    assert ok is False


def test_resource_exhausted_without_retry_info_is_not_retried(report: Report) -> None:
    """RESOURCE_EXHAUSTED with no ``RetryInfo`` in its details: one attempt only, a failed
    flush well inside the export timeout (the SDK alone retries it until the timeout)."""
    seconds, ok, attempts, _ = report["RESOURCE_EXHAUSTED"]
    assert attempts == 1
    assert ok is False
    assert seconds < EXPORT_TIMEOUT


def test_resource_exhausted_with_retry_info_is_retried_after_its_delay(report: Report) -> None:
    """RESOURCE_EXHAUSTED with ``RetryInfo``: retried, the second attempt no sooner than
    the delay the collector named, and the flush fails within the export timeout."""
    seconds, ok, attempts, first_gap = report[WITH_RETRY_INFO]
    assert attempts >= 2
    assert first_gap >= RETRY_DELAY
    assert ok is False
    assert seconds <= EXPORT_TIMEOUT + 0.5


def test_the_retry_info_rule_is_active_on_the_installed_exporter() -> None:
    """The probe (the SDK's own retry loop run against a stand-in stub) finds that a
    wrapped exporter gives up on RESOURCE_EXHAUSTED without ``RetryInfo`` after one
    attempt, on the installed release (``./run compat`` runs it at the floor too)."""
    assert grpc_exporter.retry_info_only_supported() is True


def test_without_the_probe_the_exporter_is_left_as_built() -> None:
    """When the probe says no, the exporter keeps the client the SDK built (the public
    behaviour: RESOURCE_EXHAUSTED retried until the timeout), and the answer is cached."""
    saved = dict(_probes._answers)
    exporter: Any = OTLPSpanExporter(endpoint="http://127.0.0.1:1", insecure=True)
    client = exporter._client
    try:
        _probes._answers[grpc_exporter.RETRY_INFO_ONLY] = False
        assert grpc_exporter.honour_retry_info(exporter) is exporter
        assert exporter._client is client
        _probes._answers[grpc_exporter.RETRY_INFO_ONLY] = True
        grpc_exporter.honour_retry_info(exporter)
        assert exporter._client is not client
    finally:
        _probes._answers.clear()
        _probes._answers.update(saved)
        exporter.shutdown()
