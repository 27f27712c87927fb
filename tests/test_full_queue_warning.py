"""A full batch queue warns once per window and counts every drop (issue #24, T-01).

The SDK logs "Queue full" for every span or log record that meets a full queue, and its
duplicate filter then discards all but one per 20 s.  Building each of those records cost
13 µs of a dropped item's 22 µs with a dead collector.  Once the SDK has warned in a
window, the drop hook makes room itself: the records are no longer built, and the drops
are counted as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Literal

import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import dead_collector
from unified_obs import metrics
from unified_obs._compat import active_paths

PRODUCED = 300
QUEUE = 8

pytestmark = pytest.mark.skipif(
    not active_paths()["otel.batch_drop_hook"],
    reason="the installed SDK (before 1.45) drops from a full queue without telling anyone",
)


class _Built(logging.Filter):
    """Counts the "Queue full" records built on the SDK's batch logger (first in line,
    before its duplicate filter discards repeats)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += "Queue full" in str(record.msg)
        return True


@pytest.fixture
def built() -> Iterator[_Built]:
    logger = logging.getLogger("opentelemetry.sdk._shared_internal")
    counter = _Built()
    logger.filters.insert(0, counter)
    yield counter
    logger.removeFilter(counter)


def _value(name: str, signal: str, **labels: str) -> int:
    return int(metrics.value(name, signal=signal, **labels) or 0)


def _end_spans() -> None:
    tracer = trace.get_tracer("flood")
    for _ in range(PRODUCED):
        with tracer.start_as_current_span("flooded"):
            pass


def _log_lines() -> None:
    logger = obs.get_logger("flood")
    for _ in range(PRODUCED):
        logger.info("flooded")


@pytest.mark.parametrize(
    ("signal", "produce"), [("traces", _end_spans), ("logs", _log_lines)], ids=["spans", "logs"]
)
def test_a_full_queue_builds_one_warning_per_window_and_counts_every_drop(
    signal: Literal["traces", "logs"],
    produce: Callable[[], None],
    built: _Built,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """300 spans (or log records) into a queue of 8 whose exporter hangs on a blackhole
    collector: at most two "Queue full" records are built (one per 20 s window; the test
    may straddle two), not one per drop, and every item is either counted as dropped or
    still queued (or held by the hanging export)."""
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", str(QUEUE))
    monkeypatch.setenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "4")
    with dead_collector("blackhole") as endpoint:
        obs.setup(
            service_name="flood", environ={}, otlp_endpoint=endpoint, handle_signals=False,
            traces_exporter="otlp" if signal == "traces" else "none", metrics_exporter="none",
            logs_exporter="otlp" if signal == "logs" else "none", log_format="json",
            bsp_max_queue_size=QUEUE, bsp_max_export_batch_size=4,
        )  # fmt: skip
        produce()
        dropped = _value("unified_obs.export.items", signal, outcome="dropped")
        queued = _value("unified_obs.export.queued", signal)
        warnings = built.count
        obs.shutdown(timeout=0.5)
    capsys.readouterr()
    assert dropped + queued == PRODUCED, (dropped, queued)
    assert dropped >= PRODUCED - QUEUE - 4
    assert 1 <= warnings <= 2, warnings
