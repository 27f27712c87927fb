"""Exact accounting per signal: every span and log record produced is exported, failed,
dropped or still queued, and ``force_flush()``/``shutdown()`` say how many of each.

A real process floods a slow collector on loopback (each export answered after 0.2 s)
with 20,000 spans and 5,000 log records from one thread, far more than the batch
queues hold, so most are dropped.  The SDK counted a drop whenever it saw its queue
full, even when its worker emptied the queue before the append: 20,001 spans counted
for 20,000 produced in this very flood before the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .hostile_collector import Answer, hostile_collector
from .otel_release import SDK

SPANS, LOGS, BATCH = 20_000, 5_000, 512

CHILD = """
import json, sys
import unified_obs as obs
from unified_obs import metrics
from unified_obs.metrics._self_metrics import export_counts
from opentelemetry import trace

tel = obs.setup(
    environ={}, service_name="flood", otlp_endpoint=sys.argv[1], otlp_timeout=2.0,
    traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="none",
    handle_signals=False, log_level="info",
)
tracer, log = trace.get_tracer("flood"), obs.get_logger("flood")
during = []
for i in range(SPANS):
    with tracer.start_as_current_span("item"):
        pass
    if i < LOGS:
        log.info("item", i=i)
    if i % 2_000 == 1_999:
        during.append({"produced": {"traces": i + 1, "logs": min(i + 1, LOGS)}, **export_counts()})
flushed = tel.force_flush(timeout=1.0)
result = tel.shutdown(timeout=3.0)
report = {
    "during": during,
    "flushed": {k: dict(v) for k, v in flushed.counts.items()},
    "shutdown": {k: dict(v) for k, v in result.counts.items()},
    "self_metrics": {
        signal: {
            outcome: metrics.value("unified_obs.export.items", signal=signal, outcome=outcome) or 0
            for outcome in ("exported", "failed", "dropped")
        }
        for signal in ("traces", "logs")
    },
    "queued_gauge": {
        signal: metrics.value("unified_obs.export.queued", signal=signal)
        for signal in ("traces", "logs")
    },
}
print("REPORT " + json.dumps(report))
"""


def _report(tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "flood.py"
    script.write_text(CHILD.replace("SPANS", str(SPANS)).replace("LOGS", str(LOGS)))
    with hostile_collector() as collector:
        collector.script = Answer(delay=0.2)
        done = subprocess.run(
            [sys.executable, str(script), collector.endpoint],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    return report


def _total(counts: dict[str, int]) -> int:
    return counts["exported"] + counts["failed"] + counts["dropped"] + counts["queued"]


@pytest.mark.skipif(SDK < (1, 45), reason="the SDK reports queue drops to a hook from 1.45")
def test_every_item_is_accounted_for_exactly(tmp_path: Path) -> None:
    """After ``force_flush()`` and after ``shutdown()``, exported + failed + dropped +
    queued equals what was produced, exactly, for spans and for log records, in the
    result and on ``/metrics`` (``unified_obs_export_queued``); during the flood the sum
    is short by at most the one batch the worker holds, never over."""
    report = _report(tmp_path)
    for moment in ("flushed", "shutdown"):
        assert _total(report[moment]["traces"]) == SPANS, report[moment]
        assert _total(report[moment]["logs"]) == LOGS, report[moment]
    assert report["shutdown"]["traces"]["dropped"] > 0  # the flood did overflow the queue
    for signal, produced in (("traces", SPANS), ("logs", LOGS)):  # /metrics agrees
        counted = report["self_metrics"][signal]
        queued = report["shutdown"][signal]["queued"]
        assert sum(counted.values()) + queued == produced, (signal, counted, queued)
        assert report["queued_gauge"][signal] == queued
    for snapshot in report["during"]:
        for signal in ("traces", "logs"):
            short = snapshot["produced"][signal] - _total(snapshot[signal])
            assert 0 <= short <= BATCH, snapshot
