"""Metrics API: naming, get-or-create, bound children, exemplars, guard, never raising."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import REGISTRY
from prometheus_client import Counter as RawCounter

import unified_obs as obs
from unified_obs import ConfigError, metrics
from unified_obs.metrics._names import prom_name
from unified_obs.testing import capture


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("db.client.connection.count", "{connection}", "gauge", "db_client_connection_count"),
        ("http.server.request.body.size", "By", "histogram", "http_server_request_body_size_bytes"),
        ("cpu.utilization", "1", "gauge", "cpu_utilization"),
        ("process.cpu.time", "ms", "counter", "process_cpu_time_milliseconds"),
        ("requests.rate", "{request}/s", "gauge", "requests_rate_per_second"),
        ("queue.latency_seconds", "s", "histogram", "queue_latency_seconds"),
        ("throughput", "By/s", "gauge", "throughput_bytes_per_second"),
        ("orders-created", "", "counter", "orders_created"),
    ],
)
def test_otel_names_map_to_prometheus(name: str, unit: str, kind: str, expected: str) -> None:
    """OTel names and UCUM units map to Prometheus names as the specification and the
    Collector map them: unit words, never rescaled; ``1`` adds nothing; ``/`` is ``_per_``."""
    assert prom_name(name, unit, kind) == expected


def test_counter_exposes_total_and_counts() -> None:
    """A counter is `<name>_total` on /metrics and counts positional and named labels alike."""
    orders = obs.counter("orders.created", "Orders created", labels=("channel",))
    orders.labels("web").inc()
    orders.labels(channel="web").inc(2)
    assert REGISTRY.get_sample_value("orders_created_total", {"channel": "web"}) == 3.0
    assert metrics.value("orders.created", channel="web") == 3.0


def test_get_or_create_returns_same_instrument() -> None:
    """Asking twice with the same definition returns the same object."""
    first = obs.histogram("job.duration", unit="s", labels=("job",))
    assert obs.histogram("job.duration", unit="s", labels=("job",)) is first


@pytest.mark.parametrize(
    "redefine",
    [
        lambda: obs.counter("jobs.done", "Jobs", labels=("queue", "extra")),
        lambda: obs.counter("jobs.done", "Other help", labels=("queue",)),
        lambda: obs.gauge("jobs.done", "Jobs", labels=("queue",)),
        lambda: obs.counter("jobs_done", "Jobs", labels=("queue",)),
    ],
)
def test_conflicting_definition_raises_config_error(redefine: object) -> None:
    """A conflicting redefinition (or a name that maps to the same Prometheus name) is a
    ConfigError at definition time, never 'Duplicated timeseries' later."""
    obs.counter("jobs.done", "Jobs", labels=("queue",))
    with pytest.raises(ConfigError):
        redefine()  # type: ignore[operator]


def test_name_taken_by_raw_prometheus_metric_is_config_error() -> None:
    """A name already registered directly in prometheus_client gives a ConfigError."""
    raw = RawCounter("legacy_hits", "raw")
    try:
        with pytest.raises(ConfigError, match=r"legacy\.hits"):
            obs.counter("legacy.hits")
    finally:
        REGISTRY.unregister(raw)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: obs.counter("9lives"), "name"),
        (lambda: obs.counter("requests_total"), "name"),
        (lambda: obs.counter("ok", labels=("bad-label",)), "labels"),
        (lambda: obs.counter("ok", labels=("__reserved",)), "labels"),
        (lambda: obs.counter("ok", labels="method"), "labels"),
        (lambda: obs.histogram("ok", labels=("le",)), "labels"),
        (lambda: obs.counter("ok", labels=("a.b", "a_b")), "labels"),
        (lambda: obs.histogram("ok", buckets=(1, 0.5)), "buckets"),
        (lambda: obs.histogram("ok", buckets=()), "buckets"),
        (lambda: obs.gauge("ok", multiprocess_mode="average"), "multiprocess_mode"),
    ],
)
def test_invalid_definitions_name_the_field(call: object, field: str) -> None:
    """Invalid names, label names, buckets and modes raise ConfigError naming the field."""
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.field == field


def test_histogram_defaults_to_semconv_buckets() -> None:
    """Durations use the semconv buckets; 30 ms lands in the 0.05 bucket."""
    latency = obs.histogram("rpc.duration", unit="s")
    latency.observe(0.03)
    name = "rpc_duration_seconds_bucket"
    assert REGISTRY.get_sample_value(name, {"le": "0.025"}) == 0.0
    assert REGISTRY.get_sample_value(name, {"le": "0.05"}) == 1.0
    bounds = [b for b in metrics.SEMCONV_DURATION_BUCKETS]
    assert bounds[0] == 0.005
    assert bounds[-1] == 10


def test_observations_on_bucket_bounds_are_inclusive() -> None:
    """A value equal to an upper bound belongs to that bucket (Prometheus `le`)."""
    sizes = obs.histogram("payload.size", unit="By", buckets=(10, 100))
    for value in (10, 10.5, 100, 1000):
        sizes.observe(value)
    name = "payload_size_bytes_bucket"
    assert REGISTRY.get_sample_value(name, {"le": "10.0"}) == 1.0
    assert REGISTRY.get_sample_value(name, {"le": "100.0"}) == 3.0
    assert REGISTRY.get_sample_value(name, {"le": "+Inf"}) == 4.0


def test_labels_are_cached_bound_children() -> None:
    """labels() returns the same bound child for the same values, however given."""
    hits = obs.counter("cache.hits", labels=("tier", "region"))
    child = hits.labels("l1", "eu")
    assert hits.labels("l1", "eu") is child
    assert hits.labels(tier="l1", region="eu") is child
    assert hits.labels(region="eu", tier="l1") is child


def test_labels_without_arguments_on_unlabelled_instrument() -> None:
    """labels() with no values on an instrument without labels is the instrument's series."""
    plain = obs.counter("plain.things")
    plain.labels().inc()
    plain.inc()
    assert metrics.value("plain.things") == 2.0


def test_non_string_label_values_are_converted() -> None:
    """Label values are str()-ed: 200 and '200' are one series."""
    responses = obs.counter("responses", labels=("status",))
    responses.labels(200).inc()
    responses.labels("200").inc()
    assert metrics.value("responses", status="200") == 2.0


def test_gauge_and_up_down_counter() -> None:
    """Gauges set/inc/dec; up-down counters inc/dec."""
    temperature = obs.gauge("room.temperature", unit="Cel", labels=("room",))
    temperature.labels("lab").set(21.5)
    temperature.labels("lab").inc(1)
    temperature.labels("lab").dec(0.5)
    inflight = obs.up_down_counter("jobs.inflight")
    inflight.inc()
    inflight.inc()
    inflight.dec()
    assert REGISTRY.get_sample_value("room_temperature_celsius", {"room": "lab"}) == 22.0
    assert REGISTRY.get_sample_value("jobs_inflight") == 1.0


def test_time_is_context_manager_and_decorator() -> None:
    """histogram.time() times a block and decorates sync and async functions."""
    import asyncio

    timing = obs.histogram("step.duration", unit="s", labels=("step",))
    with timing.labels("block").time():
        pass

    @timing.labels("sync").time()
    def work() -> int:
        return 7

    @timing.labels("async").time()
    async def awork() -> int:
        return 8

    assert work() == 7
    assert work() == 7
    assert asyncio.run(awork()) == 8
    assert [metrics.value("step.duration", step=s) for s in ("block", "sync", "async")] == [1, 2, 1]


def test_exemplar_carries_sampled_span() -> None:
    """Inside a sampled span, an observation and an increment carry trace_id/span_id."""
    latency = obs.histogram("op.duration", unit="s")
    ops = obs.counter("ops")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        latency.observe(0.2)
        ops.inc()
        ctx = span.get_span_context()
    expected = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
    bucket = latency._default._buckets[6]
    assert bucket.get_exemplar().labels == expected
    assert ops._default._value.get_exemplar().labels == expected


def test_no_exemplar_for_unsampled_span() -> None:
    """A non-sampled span leaves no exemplar (no trace a backend cannot find)."""
    latency = obs.histogram("quiet.duration", unit="s")
    with TracerProvider(sampler=ALWAYS_OFF).get_tracer("t").start_as_current_span("op"):
        latency.observe(0.2)
    assert all(b.get_exemplar() is None for b in latency._default._buckets)


def test_record_path_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    """Wrong labels, negative increments, NaN and non-numbers are dropped and logged."""
    hits = obs.counter("never.raises", labels=("a",))
    latency = obs.histogram("never.raises.duration", unit="s")
    with caplog.at_level(logging.WARNING, logger="unified_obs"):
        hits.labels("x", "y").inc()
        hits.labels(b="x").inc()
        hits.labels(["unhashable"]).inc()
        hits.labels("x").inc(-1)
        hits.labels("x").inc("many")  # type: ignore[arg-type]
        hits.inc()
        latency.observe(float("nan"))
        latency.observe("slow")  # type: ignore[arg-type]
        depth = obs.gauge("never.raises.depth")
        depth.set(3)
        depth.set("high")  # type: ignore[arg-type]
        depth.inc(None)  # type: ignore[arg-type]
        depth.dec("x")  # type: ignore[arg-type]
    assert metrics.value("never.raises", a="x") == 0.0
    assert metrics.value("never.raises.duration") == 0.0
    assert metrics.value("never.raises.depth") == 3.0
    assert any("never.raises expects labels" in r.getMessage() for r in caplog.records)
    assert any("call .labels(...) first" in r.getMessage() for r in caplog.records)


def test_cardinality_limit_folds_into_overflow() -> None:
    """Past the limit, new label sets go to one overflow series, counted by a self-metric,
    with one warning naming the instrument."""
    with capture(metrics_cardinality_limit=5) as cap:
        users = obs.counter("logins", labels=("user",))
        for i in range(50):
            users.labels(f"user-{i}").inc()
        warnings = [r for r in cap.logs if "logins reached its limit" in r["event"]]
        assert len(users.series()) == 6
        assert metrics.value("logins", user="__overflow__") == 45.0
        assert metrics.value("unified_obs.metrics.overflow", metric="logins") == 45.0
        assert REGISTRY.get_sample_value("logins_total", {"user": "user-4"}) == 1.0
    assert len(warnings) == 1


def test_limit_applies_to_instruments_defined_before_setup() -> None:
    """An instrument defined at import time takes the limit setup() configures."""
    early = obs.counter("early.bird", labels=("k",))
    obs.setup(service_name="t", environ={}, metrics_cardinality_limit=2)
    for i in range(4):
        early.labels(str(i)).inc()
    assert len(early.series()) == 3


def test_namespace_prefixes_prometheus_names_only() -> None:
    """metrics_namespace prefixes Prometheus names, also of earlier instruments, keeping values."""
    early = obs.counter("signups")
    early.inc(2)
    obs.setup(service_name="t", environ={}, metrics_namespace="shop")
    early.inc()
    assert REGISTRY.get_sample_value("shop_signups_total") == 3.0
    assert REGISTRY.get_sample_value("signups_total") is None


def _in_threads(run: Callable[[], None], count: int) -> None:
    """Run ``run`` in ``count`` threads at once and wait for them all."""
    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_gauge_steps_of_one_mix_with_amounts_and_set() -> None:
    """``up()``/``down()`` (the middleware's in-flight steps, taken without a lock) add
    to what ``inc``, ``dec`` and ``set`` do, and /metrics reads the sum."""
    inflight = obs.up_down_counter("steps.inflight", labels=("lane",)).labels("a")
    for _ in range(3):
        inflight.up()
    inflight.down()
    inflight.inc(2.5)
    assert REGISTRY.get_sample_value("steps_inflight", {"lane": "a"}) == 4.5
    inflight.set(10)
    inflight.up()
    inflight.dec(0.5)
    assert inflight.value() == 10.5
    assert REGISTRY.get_sample_value("steps_inflight", {"lane": "a"}) == 10.5


def test_gauge_steps_from_many_threads_are_exact() -> None:
    """Eight threads stepping one series up and down lose no step."""
    inflight = obs.up_down_counter("steps.threads").labels()

    def run() -> None:
        for _ in range(20_000):
            inflight.up()
        for _ in range(5_000):
            inflight.down()

    _in_threads(run, 8)
    assert REGISTRY.get_sample_value("steps_threads") == 8 * 15_000


def test_gauge_steps_carry_over_a_rebuilt_metric() -> None:
    """A step up before ``setup()`` renames the metric (a namespace) and its step down
    after it cancel out: the count moves with the series."""
    inflight = obs.up_down_counter("steps.moved").labels()
    inflight.up()
    inflight.up()
    obs.setup(service_name="t", environ={}, metrics_namespace="shop")
    inflight.down()
    assert REGISTRY.get_sample_value("shop_steps_moved") == 1.0


def test_concurrent_increments_are_exact() -> None:
    """Threads incrementing through labels() lose nothing."""
    work = obs.counter("parallel.work", labels=("lane",))

    def run() -> None:
        for i in range(5_000):
            work.labels(str(i % 5)).inc()

    _in_threads(run, 8)
    assert sum(metrics.value("parallel.work", lane=str(i)) or 0 for i in range(5)) == 40_000


def test_otel_api_metrics_appear_on_metrics_endpoint() -> None:
    """Metrics recorded through the OpenTelemetry API (other instrumentations) are served,
    labelled with the scope that recorded them."""
    obs.setup(service_name="t", environ={})
    meter = otel_metrics.get_meter("third.party", "2.1")
    meter.create_counter("outbound.requests", unit="{request}").add(3, {"peer": "db"})
    meter.create_histogram("outbound.duration", unit="s").record(0.2)
    scope = {"otel_scope_name": "third.party", "otel_scope_version": "2.1"}
    assert REGISTRY.get_sample_value("outbound_requests_total", {"peer": "db", **scope}) == 3.0
    assert REGISTRY.get_sample_value("outbound_duration_seconds_count", scope) == 1.0
    bucket = REGISTRY.get_sample_value("outbound_duration_seconds_bucket", {"le": "+Inf", **scope})
    assert bucket == 1.0


def test_capture_reads_metric_values() -> None:
    """testing.capture() exposes metric values next to spans and logs."""
    with capture() as cap:
        obs.counter("captured.things", labels=("kind",)).labels("a").inc(4)
        assert cap.metric("captured.things", kind="a") == 4.0
        assert cap.metric("captured_things_total", kind="a") == 4.0
        assert cap.metric("captured.things", kind="b") is None


def test_reset_allows_redefinition() -> None:
    """After testing.reset() an instrument can be defined differently (tests, reloads)."""
    from unified_obs.testing import reset

    obs.counter("redefined", labels=("a",))
    reset()
    obs.counter("redefined", labels=("b",)).labels("x").inc()
    assert REGISTRY.get_sample_value("redefined_total", {"b": "x"}) == 1.0


def test_scrapes_during_increments_never_go_backwards() -> None:
    """While 8 threads increment (and observe), concurrent scrapes see non-decreasing
    totals without errors, and the final total is exact."""
    from prometheus_client.parser import text_string_to_metric_families

    work = obs.counter("scraped.work", labels=("lane",))
    latency = obs.histogram("scraped.latency", unit="s")
    stop = threading.Event()
    seen: list[float] = []

    def scrape_once() -> None:
        status, _, body = metrics.render(None, None)
        assert status == 200
        families = text_string_to_metric_families(body.decode())
        seen.append(
            sum(s.value for f in families for s in f.samples if s.name == "scraped_work_total")
        )

    def scrape() -> None:
        while not stop.is_set():
            scrape_once()

    def run() -> None:
        for i in range(3_000):
            work.labels(str(i % 3)).inc()
            latency.observe(0.01)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    _in_threads(run, 8)
    stop.set()
    scraper.join()
    scrape_once()
    assert seen == sorted(seen)
    assert seen[-1] == 24_000
    assert metrics.value("scraped.latency") == 24_000


def test_up_down_counter_amounts_of_every_kind() -> None:
    """Ints, floats and numeric text add up alike on a single-process series; amounts that
    are not numbers are refused without raising and leave the value as it was."""
    queue = obs.up_down_counter("queue.items", labels=("queue",))
    child = queue.labels("q")
    child.inc()
    child.inc(3)
    child.dec(0.5)
    child.inc("2")  # type: ignore[arg-type]
    child.dec(True)
    child.inc(None)  # type: ignore[arg-type]
    child.dec("x")  # type: ignore[arg-type]
    assert metrics.value("queue.items", queue="q") == 4.5
    assert REGISTRY.get_sample_value("queue_items", {"queue": "q"}) == 4.5
