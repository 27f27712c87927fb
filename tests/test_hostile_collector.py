"""A hostile OTLP/HTTP collector cannot hurt the process (reliability plan T-03, T-05, T-06).

Each case runs a real process exporting spans over OTLP/HTTP to a scripted collector on
loopback (``tests/hostile_collector.py``) and reports, as JSON: whether the flush
succeeded, how long it took, how much the process's peak RSS grew, and the spans the
self-metrics counted exported and failed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from .hostile_collector import Answer, Collector, bomb, hostile_collector

EXPORT_TIMEOUT = 2.0  # seconds, OTEL_EXPORTER_OTLP_TIMEOUT of the child
MiB = 1024 * 1024

CHILD = """
import json, resource, sys, time
import unified_obs as obs
from unified_obs import metrics
from opentelemetry import trace

tel = obs.setup(
    environ={}, service_name="hostile", otlp_endpoint=sys.argv[1], otlp_timeout=float(sys.argv[2]),
    traces_exporter="otlp", logs_exporter="none", metrics_exporter="none",
    handle_signals=False, log_level="critical",
)
tracer = trace.get_tracer("t")
for i in range(50):
    with tracer.start_as_current_span("work"):
        pass
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
flushed = tel.force_flush(timeout=30.0)
elapsed = time.monotonic() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
def items(outcome):
    return metrics.value("unified_obs.export.items", signal="traces", outcome=outcome) or 0
print(json.dumps({
    "ok": flushed.ok, "elapsed": elapsed, "rss_growth_mib": grown / 1024,
    "exported": items("exported"), "failed": items("failed"),
}))
"""


def _export_through(
    tmp_path: Path, collector: Collector, timeout: float = EXPORT_TIMEOUT
) -> dict[str, Any]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(script), collector.endpoint, str(timeout)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _outcome(report: dict[str, Any]) -> tuple[bool, float, float]:
    """(flush succeeded, spans counted exported, spans counted failed)."""
    return report["ok"], report["exported"], report["failed"]


def test_a_gzip_bomb_is_never_inflated(tmp_path: Path) -> None:
    """A 200 whose ~250 kB gzip body inflates to 256 MiB: the exporter reads at most
    4 MiB of it, peak RSS grows by at most 10 MiB (without the cap: +516 MiB and a
    flush reported successful), and the export counts as failed."""
    bomb(256 * MiB)  # built before the clock starts
    with hostile_collector() as collector:
        collector.script = Answer(body_bytes=256 * MiB, gzip_bomb=True)
        report = _export_through(tmp_path, collector, timeout=10.0)
    assert report["rss_growth_mib"] <= 10, report
    assert _outcome(report) == (False, 0, 50)
    assert len(collector.arrivals) == 1  # not retried


def test_a_huge_body_is_read_only_up_to_the_cap(tmp_path: Path) -> None:
    """A 200 with a 100 MiB plain body: read up to the 4 MiB cap, then the connection is
    dropped; RSS grows by at most 10 MiB and the export counts as failed, within its
    timeout."""
    with hostile_collector() as collector:
        collector.script = Answer(body_bytes=100 * MiB)
        report = _export_through(tmp_path, collector)
    assert report["rss_growth_mib"] <= 10, report
    assert _outcome(report) == (False, 0, 50)
    assert report["elapsed"] <= EXPORT_TIMEOUT * 1.5


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_counted_failure(tmp_path: Path, status: int) -> None:
    """A redirect is not success (OTLP never redirects; following one would send the
    telemetry elsewhere): one request, no follow-up, the spans count as failed."""
    with hostile_collector() as collector:
        collector.script = Answer(status=status, headers=(("Location", "http://127.0.0.1:9/"),))
        report = _export_through(tmp_path, collector)
    assert _outcome(report) == (False, 0, 50)
    assert len(collector.arrivals) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 500, 501])
def test_non_retryable_statuses_are_sent_once(tmp_path: Path, status: int) -> None:
    """Statuses the OTLP specification forbids retrying get exactly one request."""
    with hostile_collector() as collector:
        collector.script = Answer(status=status)
        report = _export_through(tmp_path, collector)
    assert _outcome(report) == (False, 0, 50)
    assert len(collector.arrivals) == 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_within_the_export_timeout(
    tmp_path: Path, status: int
) -> None:
    """429, 502, 503, 504 without ``Retry-After``: retried with back-off, and the whole
    export (every attempt and wait) ends within the export timeout (+ 0.5 s)."""
    with hostile_collector() as collector:
        collector.script = Answer(status=status)
        report = _export_through(tmp_path, collector)
    assert len(collector.arrivals) >= 2
    assert _outcome(report) == (False, 0, 50)
    assert report["elapsed"] <= EXPORT_TIMEOUT + 0.5


def test_retry_after_is_honoured_only_within_the_deadline(tmp_path: Path) -> None:
    """429 with ``Retry-After: 3600``: the exporter does not wait an hour; it gives up at
    once (the wait exceeds the deadline) and counts the spans failed."""
    with hostile_collector() as collector:
        collector.script = Answer(status=429, headers=(("Retry-After", "3600"),))
        report = _export_through(tmp_path, collector)
    assert len(collector.arrivals) == 1
    assert report["ok"] is False
    assert report["elapsed"] <= EXPORT_TIMEOUT


def test_a_short_retry_after_is_waited_for(tmp_path: Path) -> None:
    """429 with ``Retry-After: 1`` inside a 2 s deadline: the second attempt comes about
    one second after the first (within 10 %)."""
    with hostile_collector() as collector:
        collector.script = Answer(status=429, headers=(("Retry-After", "1"),))
        _export_through(tmp_path, collector)
    assert len(collector.arrivals) >= 2
    assert 0.9 <= collector.arrivals[1] - collector.arrivals[0] <= 1.1


def test_retry_after_as_an_http_date_is_waited_for(tmp_path: Path) -> None:
    """503 with ``Retry-After`` as an HTTP-date (whole seconds) a few seconds ahead, inside
    a 5 s deadline: the second attempt waits for that moment, and not much longer."""
    retry_at = math.ceil(time.time()) + 2
    wall_minus_monotonic = time.time() - time.monotonic()
    with hostile_collector() as collector:
        answer = Answer(status=503, headers=(("Retry-After", formatdate(retry_at, usegmt=True)),))
        collector.script = answer
        _export_through(tmp_path, collector, timeout=5.0)
    assert len(collector.arrivals) >= 2
    second = collector.arrivals[1] + wall_minus_monotonic
    assert retry_at - 0.1 <= second <= retry_at + 2.0


def test_an_endless_chunked_body_is_cut_at_the_cap(tmp_path: Path) -> None:
    """200 with a chunked body that never ends: read up to 4 MiB, then the export fails;
    RSS grows by at most 10 MiB, within the export timeout (+ 0.5 s)."""
    with hostile_collector() as collector:
        collector.script = Answer(chunk_bytes=64 * 1024)
        report = _export_through(tmp_path, collector)
    assert report["rss_growth_mib"] <= 10, report
    assert _outcome(report) == (False, 0, 50)
    assert report["elapsed"] <= EXPORT_TIMEOUT + 0.5


def test_a_dripping_body_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """200 with a body dripped one byte every 50 ms (each read well within the socket
    timeout): the read stops at the attempt's deadline and the export fails within the
    export timeout (+ 0.5 s) instead of lasting as long as the collector likes."""
    with hostile_collector() as collector:
        collector.script = Answer(chunk_bytes=1, chunk_every=0.05)
        report = _export_through(tmp_path, collector)
    assert _outcome(report) == (False, 0, 50)
    assert report["elapsed"] <= EXPORT_TIMEOUT + 0.5


def test_dripping_headers_are_cut_at_the_deadline(tmp_path: Path) -> None:
    """The status line and an endless header dripped a byte every 50 ms (each socket
    read well within its timeout): the attempt is abandoned at its deadline, the export
    fails within the export timeout (+ 0.5 s) and counts its spans failed."""
    with hostile_collector() as collector:
        collector.script = Answer(drip_head=0.05)
        report = _export_through(tmp_path, collector)
    assert _outcome(report) == (False, 0, 50)
    assert report["elapsed"] <= EXPORT_TIMEOUT + 0.5


def test_garbage_instead_of_http_is_a_counted_failure(tmp_path: Path) -> None:
    """Bytes that are not an HTTP response: the export fails within its timeout and the
    spans count as failed; nothing raises into the process."""
    with hostile_collector() as collector:
        collector.script = Answer(raw=b"\x00\xffthis is not http\r\n\r\n")
        report = _export_through(tmp_path, collector)
    assert _outcome(report) == (False, 0, 50)
    assert report["elapsed"] <= EXPORT_TIMEOUT + 0.5


def test_a_well_behaved_collector_still_gets_everything(tmp_path: Path) -> None:
    """The caps cost nothing to a normal collector: an empty 200 exports all 50 spans."""
    with hostile_collector() as collector:
        report = _export_through(tmp_path, collector)
    assert _outcome(report) == (True, 50, 0)


ROUNDS = """
import json, sys, time
import unified_obs as obs
from opentelemetry import trace

tel = obs.setup(
    environ={}, service_name="blackhole", otlp_endpoint=sys.argv[1], otlp_timeout=1.0,
    traces_exporter="otlp", logs_exporter="none", metrics_exporter="none",
    handle_signals=False, log_level="critical",
)
tracer = trace.get_tracer("t")
elapsed = []
for round in range(2):
    for i in range(10):
        with tracer.start_as_current_span("work"):
            pass
    start = time.monotonic()
    tel.force_flush(timeout=30.0)
    elapsed.append(time.monotonic() - start)
print(json.dumps(elapsed))
"""


def test_each_export_attempt_is_bounded_against_a_blackhole(tmp_path: Path) -> None:
    """T-03: a collector that reads the request and never answers, export timeout 1 s:
    each export (attempts and waits together) ends within 1.5 s, and the next batch is
    still attempted (the worker is not stuck on the first)."""
    script = tmp_path / "rounds.py"
    script.write_text(ROUNDS)
    with hostile_collector() as collector:
        collector.script = Answer(hang=True)
        done = subprocess.run(
            [sys.executable, str(script), collector.endpoint],
            capture_output=True,
            text=True,
            timeout=60,
        )
        arrivals = len(collector.arrivals)
    assert done.returncode == 0, done.stderr
    elapsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(seconds <= 1.5 for seconds in elapsed), elapsed
    assert arrivals >= 2
