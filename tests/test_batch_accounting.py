"""Exact accounting of the span batch queue when threads race for its last free slots."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import otlp_receiver
from unified_obs import metrics
from unified_obs._compat import active_paths

THREADS = 4
ROUNDS = 150
SPANS_PER_ROUND = 3


def _items(outcome: str) -> int:
    return int(metrics.value("unified_obs.export.items", signal="traces", outcome=outcome) or 0)


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Threads switch every microsecond, so that a check and an append of one thread often
    have another thread's in between (the interleaving the race needs)."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(saved)


def _race(start: threading.Barrier) -> None:
    tracer = trace.get_tracer("race")
    for _ in range(ROUNDS):
        start.wait(10)
        for _ in range(SPANS_PER_ROUND):
            with tracer.start_as_current_span("raced"):
                pass


@pytest.mark.skipif(
    not active_paths()["otel.batch_drop_hook"],
    reason="the installed SDK (before 1.45) drops from a full queue without telling anyone",
)
def test_every_span_is_exported_or_counted_as_dropped_when_threads_race(
    frequent_switches: None,
) -> None:
    """Threads that end spans together into a queue of four (the exporter sending to a
    real OTLP receiver meanwhile) never evict a span uncounted: after shutdown, the spans
    exported plus those counted as dropped or failed are exactly the spans ended, and the
    receiver got every span counted as exported."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="race", environ={}, otlp_endpoint=endpoint, handle_signals=False,
            bsp_max_queue_size=4, bsp_max_export_batch_size=2, logs_exporter="none",
        )  # fmt: skip
        start = threading.Barrier(THREADS)
        threads = [threading.Thread(target=_race, args=(start,)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert obs.shutdown(timeout=10).ok
        delivered = sum(span.name == "raced" for _, span in received.spans())
    produced = THREADS * ROUNDS * SPANS_PER_ROUND
    exported, dropped, failed = _items("exported"), _items("dropped"), _items("failed")
    assert (exported, failed) == (delivered, 0)
    assert exported + dropped == produced, (exported, dropped, produced)
