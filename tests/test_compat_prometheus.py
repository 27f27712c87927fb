"""The bound series on prometheus_client: the fast path on our own values, and the public
fallback where the probe does not know the children's layout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

import unified_obs as obs
from unified_obs import metrics
from unified_obs._compat import _probes, active_paths
from unified_obs._compat.prometheus_client import CHILD_VALUES, ExemplarValue, PublicValue


@pytest.fixture(params=[True, False], ids=["fast", "public"])
def layout_known(request: pytest.FixtureRequest) -> Iterator[bool]:
    """The probe's answer, forced for the test (before any series is bound) and restored."""
    saved = dict(_probes._answers)
    _probes._answers[CHILD_VALUES] = request.param
    yield request.param
    _probes._answers.clear()
    _probes._answers.update(saved)


def test_the_probe_knows_the_installed_release() -> None:
    """On the installed prometheus_client the probe finds the layout it relies on."""
    assert active_paths()[CHILD_VALUES] is True


def test_counters_gauges_and_histograms_count_on_either_path(layout_known: bool) -> None:
    """Counts, gauge steps and histogram buckets reach /metrics and ``metrics.value`` alike
    on our own values and through the children's public methods."""
    orders = obs.counter("compat.orders", "Orders", labels=("channel",))
    busy = obs.up_down_counter("compat.busy", "Busy workers")
    took = obs.histogram("compat.took", "Time taken", unit="s", buckets=(0.1, 1.0))
    orders.labels("web").inc(2)
    orders.labels("web").inc()
    steps = busy.labels()  # the in-flight gauge's lock-free steps
    steps.up()
    steps.up()
    steps.down()
    busy.inc(0.5)
    took.observe(0.05)
    took.observe(0.5)
    took.observe(5.0)
    kind = ExemplarValue if layout_known else PublicValue
    assert isinstance(orders.labels("web")._value, kind)
    assert metrics.value("compat.orders", channel="web") == 3.0
    assert REGISTRY.get_sample_value("compat_orders_total", {"channel": "web"}) == 3.0
    assert REGISTRY.get_sample_value("compat_busy") == 1.5
    buckets = [REGISTRY.get_sample_value("compat_took_seconds_bucket", {"le": le}) for le in (
        "0.1", "1.0", "+Inf")]  # fmt: skip
    assert buckets == [1.0, 2.0, 3.0]
    assert REGISTRY.get_sample_value("compat_took_seconds_sum") == pytest.approx(5.55)
    assert metrics.value("compat.took") == 3.0


def test_exemplars_are_kept_on_the_fast_path_only(layout_known: bool) -> None:
    """An increment inside a sampled span leaves its trace id as the exemplar on our own
    values; the public fallback records the count without one."""
    counter = obs.counter("compat.sales", "Sales")
    with TracerProvider().get_tracer("t").start_as_current_span("sale") as span:
        counter.inc()
    trace_id = format(span.get_span_context().trace_id, "032x")
    exemplar = counter.labels()._value.get_exemplar()
    assert metrics.value("compat.sales") == 1.0
    if layout_known:
        assert exemplar is not None
        assert exemplar.labels["trace_id"] == trace_id
    else:
        assert exemplar is None
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_histogram_snapshot_reads_the_child_once_on_the_public_path(
    layout_known: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A histogram series' ``snapshot()`` and ``value()`` read every bucket and the sum
    from one ``collect()`` of the child on the public fallback (none on our own values),
    the same numbers as each bucket's and the sum's own ``get()``."""
    bound: Any = obs.histogram("compat.waited", "Waited", unit="s", buckets=(0.1, 1.0)).labels()
    for seconds in (0.05, 0.5, 0.7, 5.0):
        bound.observe(seconds)
    collected = bound._child.collect
    calls: list[None] = []

    def counted() -> Any:
        calls.append(None)
        return collected()

    monkeypatch.setattr(bound._child, "collect", counted)
    bounds, counts, total, exemplars = bound.snapshot()
    assert (bounds, counts, exemplars) == ([0.1, 1.0], [1.0, 2.0, 1.0], [None, None, None])
    assert total == pytest.approx(6.25)
    assert bound.value() == 4.0
    assert len(calls) == (0 if layout_known else 2)
    assert [bucket.get() for bucket in bound._buckets] == counts
    assert bound._sum.get() == total
