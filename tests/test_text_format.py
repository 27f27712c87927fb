"""The writers of ``metrics._text_format`` write exactly what ``prometheus_client``'s
``generate_latest`` functions (text 0.0.4, OpenMetrics 1.0.0) write for the same translated
families, for any families (hypothesis) and for a real process's ``/metrics``; promtool
and the strict OpenMetrics parser accept them."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

import unified_obs as obs
from unified_obs import metrics
from unified_obs.metrics import _exposition, _prometheus, _text_format
from unified_obs.testing import reset

SOME = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
"""Bounded and repeatable: the same examples on every run."""
PROMTOOL = shutil.which("promtool")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Families(Collector):
    """A collector handing out fixed families (a registry stand-in for the encoders)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        """The families as given."""
        yield from self.families


def stock(families: list[Metric], own: set[str], openmetrics: bool = False) -> bytes:
    """What ``generate_latest`` writes for the translated families (the reference)."""
    encode: Any = openmetrics_latest if openmetrics else generate_latest
    translated = [family.merged() for family in _prometheus.plan(families, own)]
    return bytes(encode(Families(translated)))


def ours(families: list[Metric], own: set[str], openmetrics: bool = False) -> bytes:
    """What the writer writes for the same families (no resource is set in these tests,
    so :func:`~unified_obs.metrics._prometheus.plan` adds no ``target_info``)."""
    write = _text_format.write_openmetrics if openmetrics else _text_format.write
    return write(_prometheus.plan(families, own))


# Our OpenMetrics writer serves scrapes only where /metrics uses it (from prometheus-client
# 0.23 on; the declared floor, 0.22.1, writes OpenMetrics its own way and keeps its encoder).
_OURS_WRITE_OPENMETRICS = _exposition._OPENMETRICS_1 is not None


def outcome(write: Any) -> tuple[str, bytes | str]:
    """``write()``'s bytes, or the exception it raised (the stock encoder refuses an
    exemplar on a sample that cannot carry one; ours must refuse it too)."""
    try:
        return "ok", write()
    except ValueError as error:
        return "error", str(error.args[0])


label_name = st.sampled_from(["a", "b", "route", "le_x", "otel_scope_name", "zz", "ünï", "a.b"])
label_text = st.text(max_size=6) | st.sampled_from(['"', "\\", "\n", "\\n", "é", "{}", ","])
number = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1.0, 1e6, 1234567.0, 1e16, 1e-05, 0.1, 123456.7, 1.7e9, float("nan")]
)
labels = st.dictionaries(label_name, label_text, max_size=3)
timestamp = st.none() | st.floats(min_value=0, max_value=2e9)


@st.composite
def family(draw: Any) -> Metric:
    """A family of any type, samples named as that type names them (``_total``,
    ``_bucket``, ``_created``, ``_info``...), with awkward labels, values and HELP."""
    kind = draw(
        st.sampled_from(
            ["counter", "gauge", "histogram", "summary", "info", "stateset", "unknown",
             "gaugehistogram"]
        )
    )  # fmt: skip
    name = draw(st.sampled_from(["jobs", "queue_depth", "lat_seconds", "a:b"]))
    suffixes = {
        "counter": ["_total", "_created"],
        "gauge": [""],
        "histogram": ["_bucket", "_count", "_sum", "_created"],
        "summary": ["_count", "_sum", "_created", ""],
        "info": ["_info"],
        "stateset": [""],
        "unknown": [""],
        "gaugehistogram": ["_bucket", "_gcount", "_gsum"],
    }[kind]
    unit = draw(st.sampled_from(["", "seconds"])) if name == "lat_seconds" else ""
    metric = Metric(name, draw(st.text(max_size=8) | st.just('a\\b\nc"')), kind, unit)
    for _ in range(draw(st.integers(0, 5))):
        extra = {"le": "+Inf"} if kind.endswith("histogram") else {}
        exemplar = None
        if draw(st.integers(0, 3)) == 0:  # rarely: on most samples it is refused
            exemplar = Exemplar({"trace_id": draw(label_text)}, draw(number), draw(timestamp))
        metric.samples.append(
            Sample(
                name + draw(st.sampled_from(suffixes)),
                {**draw(labels), **extra},
                draw(number),
                draw(timestamp),
                exemplar,
            )
        )
    return metric


@SOME
@given(
    families=st.lists(family(), max_size=5),
    own=st.sets(st.sampled_from(["jobs", "queue_depth", "lat_seconds"])),
    scoped=st.booleans(),
    openmetrics=st.booleans() if _OURS_WRITE_OPENMETRICS else st.just(False),
)
def test_writers_match_generate_latest_for_any_families(
    families: list[Metric], own: set[str], scoped: bool, openmetrics: bool
) -> None:
    """For any families (each type, labels needing escapes, infinities, NaN, long floats,
    timestamps, exemplars, shared names, our scope on some, scope labels on or off) the
    writers' bytes are ``generate_latest``'s, in both formats."""
    _prometheus.set_scope_labels(scoped)
    try:
        assert outcome(lambda: ours(families, own, openmetrics)) == outcome(
            lambda: stock(families, own, openmetrics)
        )
    finally:
        _prometheus.set_scope_labels(True)


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, -1.0, 0.1, 1e6, 999999.0, 1234567.0, 123456.75, 1e16, 1e-05, 1.7e9,
     math.inf, -math.inf, math.nan, 5, True],
)  # fmt: skip
def test_floats_are_written_as_go_writes_them(value: float) -> None:
    """Every value is written as ``floatToGoString`` writes it (Go switches to exponents
    sooner than Python), the short-``repr`` shortcut included."""
    from prometheus_client.utils import floatToGoString

    assert _text_format.go_float(value) == floatToGoString(value)  # type: ignore[no-untyped-call]


def steady_lines(body: bytes) -> list[str]:
    """The lines of an exposition (either format), sorted, without the process and GC
    families (their values move between two scrapes)."""
    return sorted(line for line in body.decode().splitlines() if not _moving(line))


def _moving(line: str) -> bool:
    words = line.split(" ")
    name = words[2] if line.startswith("#") and len(words) > 2 else words[0]
    return name.startswith(_MOVING)


_MOVING = ("process_", "python_gc_", "python_info")


def test_a_real_scrape_has_the_stock_encoders_lines() -> None:
    """``/metrics`` of a process with our instruments (written from their series),
    OpenTelemetry-API metrics, process metrics and ``target_info`` has exactly the lines
    ``generate_latest`` writes for the translated registry (our families come first), and
    promtool accepts it."""
    obs.setup(service_name="writer", environ={})
    obs.counter("orders", labels=("channel",)).labels('we"b\n').inc(3)
    obs.histogram("job.latency", unit="s", labels=("queue",)).labels("mail").observe(0.2)
    obs.gauge("queue.depth").set(1234567.5)
    otel_metrics.get_meter("lib", "2").create_counter("lib.calls").add(1, {"a.b": "x"})
    status, headers, body = metrics.render(None, None)
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    assert steady_lines(body) == steady_lines(generate_latest(_prometheus.Translated(REGISTRY)))
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


operation = st.tuples(
    st.sampled_from(["counter", "histogram", "gauge", "unlabelled", "negative", "scope"]),
    st.sampled_from(["a", "b", 'q"\\', "é", ""]),
    st.sampled_from([0.0, 0.5, 3.0, 1e7, -2.0]),
)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(rounds=st.lists(st.lists(operation, max_size=6), min_size=1, max_size=3))
def test_own_families_match_the_stock_encoder_scrape_after_scrape(
    rounds: list[list[tuple[str, str, float]]],
) -> None:
    """Whatever is recorded between scrapes (new series, more counts, negative buckets,
    unlabelled instruments, the overflow series, scope labels turned off and on), every
    scrape has the stock encoders' lines in both formats (and the strict OpenMetrics parser
    accepts it where it accepts the stock encoder's): the texts kept per series never go
    stale."""
    reset()
    obs.setup(service_name="own", environ={}, handle_signals=False, metrics_cardinality_limit=3)
    counter = obs.counter("own.calls", labels=("who",))
    histogram = obs.histogram("own.latency", unit="s", labels=("who",))
    gauge = obs.gauge("own.level", labels=("who",))
    plain = obs.counter("own.plain")
    negative = obs.histogram("own.delta", labels=("who",), buckets=(-1.0, 0.0, 1.0))
    negative_seen = False
    for operations in rounds:
        for kind, who, amount in operations:
            if kind == "counter":
                counter.labels(who).inc(abs(amount))
            elif kind == "histogram":
                histogram.labels(who).observe(amount)
            elif kind == "gauge":
                gauge.labels(who).set(amount)
            elif kind == "unlabelled":
                plain.inc(abs(amount))
            elif kind == "negative":
                negative.labels(who).observe(amount)
            else:
                _prometheus.set_scope_labels(amount >= 0)
        body = metrics.render(None, None)[2]
        assert steady_lines(body) == steady_lines(generate_latest(_prometheus.Translated(REGISTRY)))
        om = metrics.render(OPENMETRICS, None)[2]
        stock = openmetrics_latest(_prometheus.Translated(REGISTRY))  # type: ignore[no-untyped-call]
        assert steady_lines(om) == steady_lines(stock)
        negative_seen = negative_seen or any(kind == "negative" for kind, _, _ in operations)
        if not negative_seen:
            # prometheus_client's own parser refuses its histograms with negative buckets
            assert list(parse_om(om.decode()))  # type: ignore[no-untyped-call]
    _prometheus.set_scope_labels(True)


def test_a_real_openmetrics_scrape_has_the_stock_encoders_lines() -> None:
    """The same in OpenMetrics 1.0.0 (exemplars, ``# UNIT``, ``_created`` with each series,
    ``# EOF``): the lines ``prometheus_client`` writes, our families first, and its strict
    parser accepts the scrape."""
    obs.setup(service_name="writer", environ={})
    obs.histogram("job.latency", unit="s", labels=("queue",)).labels("mail").observe(0.2)
    with trace.get_tracer("t").start_as_current_span("traced"):
        obs.counter("orders", labels=("channel",)).labels("web").inc()
        obs.histogram("job.latency", unit="s", labels=("queue",)).labels("mail").observe(3)
    otel_metrics.get_meter("lib", "2").create_histogram("lib.size", unit="By").record(3)
    accept = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    status, _, body = metrics.render(accept, None)
    assert status == 200
    stock = openmetrics_latest(_prometheus.Translated(REGISTRY))  # type: ignore[no-untyped-call]
    assert steady_lines(body) == steady_lines(stock)
    assert body.count(b" # {") == 2  # the counter's exemplar and the bucket's
    assert body.endswith(b"# EOF\n")
    assert list(parse_om(body.decode()))  # type: ignore[no-untyped-call]
