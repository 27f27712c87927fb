"""Metrics: record once, export as Prometheus (with exemplars) and OTLP.

    from unified_obs import metrics

    orders = metrics.counter("orders.created", "Orders created", labels=("channel",))
    orders.labels(channel="web").inc()
    latency = metrics.histogram("http.server.request.duration", unit="s", labels=("route",))
    with latency.labels("/orders/{id}").time():
        ...

Instruments are get-or-create, usable at import time and before ``setup()``, and never
raise on the record path.  Values live in ``prometheus_client`` (the default registry);
``/metrics`` (:func:`render`) and the OTLP exporter read the same numbers.  This module
owns the definitions table and the wiring ``setup()`` asks for (:func:`configure`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import REGISTRY
from prometheus_client.registry import CollectorRegistry

from ..config import Settings
from ..errors import ConfigError
from . import _multiprocess, _own_families, _prefork, _process, _prometheus, _runtime
from ._exposition import make_asgi_app, make_wsgi_app, read_pending, render
from ._instruments import (
    INSTRUMENT_TYPES,
    Counter,
    Definition,
    Gauge,
    Histogram,
    Instrument,
    UpDownCounter,
    forget_warnings,
    warn_limited,
)
from ._names import check_label_names, check_name
from ._otel_pipeline import MetricsPipeline, build_exporter

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = [
    "GAUGE_MODES",
    "SEMCONV_DURATION_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsPipeline",
    "UpDownCounter",
    "configure",
    "count_export",
    "counter",
    "gauge",
    "histogram",
    "instruments",
    "make_asgi_app",
    "make_wsgi_app",
    "render",
    "reset",
    "up_down_counter",
    "value",
    "watch_event_loop",
]

SEMCONV_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
)  # fmt: skip
"""OpenTelemetry semantic-convention buckets for durations in seconds (the default)."""

GAUGE_MODES: Final = frozenset(
    {
        "livesum",
        "liveall",
        "livemax",
        "livemin",
        "livemostrecent",
        "sum",
        "max",
        "min",
        "mostrecent",
    }
)
"""How a gauge combines over worker processes (``live*``: only processes still running)."""

watch_event_loop = _runtime.watch_event_loop

_OVERFLOW_METRIC: Final = "unified_obs.metrics.overflow"
_registry: CollectorRegistry = REGISTRY
_lock: Final = threading.RLock()
_instruments: dict[str, Instrument[Any]] = {}
_config: dict[str, Any] = {"namespace": None, "limit": 2000}


def counter(
    name: str, description: str = "", *, labels: Sequence[str] = (), unit: str = ""
) -> Counter:
    """A monotonic counter (get-or-create); Prometheus name ends in ``_total``."""
    definition = Definition("counter", name, description, unit, _labels(labels, "counter"))
    found: Counter = _define(definition)
    return found


def histogram(
    name: str,
    description: str = "",
    *,
    labels: Sequence[str] = (),
    unit: str = "",
    buckets: Sequence[float] | None = None,
) -> Histogram:
    """A histogram (get-or-create); buckets default to :data:`SEMCONV_DURATION_BUCKETS`."""
    definition = Definition(
        "histogram", name, description, unit, _labels(labels, "histogram"), _buckets(buckets)
    )
    found: Histogram = _define(definition)
    return found


def gauge(
    name: str,
    description: str = "",
    *,
    labels: Sequence[str] = (),
    unit: str = "",
    multiprocess_mode: str = "livesum",
) -> Gauge:
    """A gauge (get-or-create); ``multiprocess_mode`` says how workers combine."""
    if multiprocess_mode not in GAUGE_MODES:
        raise ConfigError(
            "multiprocess_mode", multiprocess_mode, "one of " + ", ".join(sorted(GAUGE_MODES))
        )
    definition = Definition(
        "gauge", name, description, unit, _labels(labels, "gauge"), None, multiprocess_mode
    )
    found: Gauge = _define(definition)
    return found


def up_down_counter(
    name: str, description: str = "", *, labels: Sequence[str] = (), unit: str = ""
) -> UpDownCounter:
    """A sum that goes up and down (get-or-create); summed over live workers."""
    definition = Definition(
        "up_down_counter", name, description, unit, _labels(labels, "gauge"), None, "livesum"
    )
    found: UpDownCounter = _define(definition)
    return found


def _labels(labels: Sequence[str], kind: str) -> tuple[str, ...]:
    return check_label_names(labels, kind)


def _buckets(buckets: Sequence[float] | None) -> tuple[float, ...]:
    if buckets is None:
        return tuple(float(b) for b in SEMCONV_DURATION_BUCKETS)
    try:
        bounds = tuple(float(b) for b in buckets if float(b) != math.inf)
    except (TypeError, ValueError):
        bounds = ()
    if not bounds or list(bounds) != sorted(set(bounds)) or any(math.isnan(b) for b in bounds):
        raise ConfigError("buckets", buckets, "a non-empty, strictly increasing list of numbers")
    return bounds


def _define(definition: Definition) -> Any:
    check_name(definition.name, definition.kind)
    if not isinstance(definition.description, str) or not isinstance(definition.unit, str):
        raise ConfigError("description", definition.description, "a string")
    with _lock:
        existing = _instruments.get(definition.name)
        if existing is not None:
            if existing.definition != definition:
                raise ConfigError(
                    "name", definition.name, f"the earlier definition {existing.definition}"
                )
            return existing
        prom = definition.prom_name(_config["namespace"])
        for other in _instruments.values():
            if other.definition.prom_name(_config["namespace"]) == prom:
                raise ConfigError(
                    "name",
                    definition.name,
                    f"a name whose Prometheus form is not "
                    f"{prom!r} (already used by {other.name!r})",
                )
        try:
            instrument = INSTRUMENT_TYPES[definition.kind](
                definition, _registry, _config["namespace"], _config["limit"], _overflowed
            )
        except ValueError as exc:
            raise ConfigError(
                "name", definition.name, f"a name free in prometheus_client ({exc})"
            ) from None
        _instruments[definition.name] = instrument
        return instrument


def _overflowed(instrument: Instrument[Any]) -> None:
    if instrument.name == _OVERFLOW_METRIC:
        return
    warn_limited(
        f"{instrument.name}:overflow",
        "unified_obs: metric %s reached its limit of %d series; new label sets go to the "
        'overflow series (every label = "__overflow__")',
        instrument.name,
        instrument.limit,
    )
    counter(
        _OVERFLOW_METRIC,
        "Measurements folded into a metric's overflow series (cardinality limit reached)",
        labels=("metric",),
    ).labels(instrument.name).inc()


def count_export(signal: str, outcome: str, amount: float) -> None:
    """Self-metrics: items ``exported``/``failed``/``dropped`` per signal, and failed calls
    (``call_failed``); called by the exporters' wrappers and, for a drop, by the request
    that found its batch queue full (so the counter is looked up, not re-defined)."""
    if outcome == "call_failed":
        _defined_counter(
            "unified_obs.export.failures", "Export calls that failed", ("signal",)
        ).labels(signal).inc(amount)
        return
    _defined_counter(
        "unified_obs.export.items",
        "Telemetry items by export outcome (exported, failed, dropped)",
        ("signal", "outcome"),
    ).labels(signal, outcome).inc(amount)


def _defined_counter(name: str, description: str, labels: tuple[str, ...]) -> Counter:
    """The counter ``name`` once defined (a dictionary read), else :func:`counter`, whose
    get-or-create checks the name and labels on every call (8 us here): a cost every span
    and log record dropped by a full queue paid on the request path
    (``python -m benchmarks.bench_dead_collector``)."""
    found = _instruments.get(name)
    return found if isinstance(found, Counter) else counter(name, description, labels=labels)


def instruments() -> list[Instrument[Any]]:
    """Every instrument defined so far."""
    with _lock:
        return list(_instruments.values())


def value(name: str, **labels: Any) -> float | None:
    """This process's value of one series (counters, gauges; histograms: the count).

    ``name`` is an instrument name or a Prometheus sample name; ``None`` when absent.
    """
    read_pending(name)
    instrument = _instruments.get(name)
    if instrument is not None:
        return instrument.value(**labels)
    found = _registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
    return None if found is None else float(found)


_live: dict[str, Any] = {}


def configure(settings: Settings, resource: Resource) -> MetricsPipeline:
    """Apply ``settings`` to every instrument and build the OTel side (``setup()`` only)."""
    _apply(settings)
    target = None if settings.prometheus_without_target_info else resource.attributes
    _prometheus.set_resource(target)
    _prometheus.set_scope_labels(not settings.prometheus_without_scope_info)
    if settings.sdk_disabled:
        return MetricsPipeline(None, None)
    from opentelemetry.sdk.metrics import MeterProvider  # the SDK, at setup() only

    from ._otlp_bridge import OtelCollector, Pusher, SdkReader, instruments_to_metrics
    from .export_status import count_pushes

    reader = SdkReader()
    provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    if _multiprocess.active_dir() is None:  # OTel-API metrics are per process: OTLP only
        collector = OtelCollector(reader)
        _registry.register(collector)
        _live["collector"] = collector
    exporter = build_exporter(settings)
    pusher = None
    if exporter is not None:
        pusher = Pusher(
            exporter,
            lambda: instruments_to_metrics(_read_all(), resource, reader.snapshot()),
            settings.metric_export_interval,
            on_export=count_pushes("metrics", count_export),
        )
    _live["pusher"] = pusher
    return MetricsPipeline(provider, pusher)


def _read_all() -> list[Instrument[Any]]:
    """Every instrument, once what waits to be recorded is in (a push reads the values
    as a scrape does: finished requests, GC pauses)."""
    read_pending()
    return instruments()


def _prom_names() -> set[str]:
    return {i.definition.prom_name(_config["namespace"]) for i in instruments()}


_prometheus.set_own_names(_prom_names)  # our families get our scope's labels on /metrics
_own_families.set_instruments(instruments)  # /metrics writes them from their series


def _apply(settings: Settings) -> None:
    with _lock:
        rebuild = settings.metrics_namespace != _config["namespace"]
        _config["namespace"] = settings.metrics_namespace
        _config["limit"] = settings.metrics_cardinality_limit
        shared = settings.metrics_multiprocess_dir or _prefork.shared_dir()  # gunicorn, uvicorn
        if shared:
            rebuild = _multiprocess.enable(shared) or rebuild
        for instrument in list(_instruments.values()):
            instrument.limit = settings.metrics_cardinality_limit
            if rebuild:
                instrument.rebuild(_registry, settings.metrics_namespace)
        _start_runtime(settings, multiprocess=_multiprocess.active_dir() is not None)


def _start_runtime(settings: Settings, *, multiprocess: bool) -> None:
    """The process metrics (which replace prometheus_client's) and the GC and event-loop
    metrics, unless ``runtime_metrics`` is off; with ``OTEL_SDK_DISABLED`` no background
    thread of ours."""
    if not settings.runtime_metrics:
        if multiprocess:  # they would show the scraping worker only
            _process.default_collectors(registered=False)
        return
    if multiprocess or not settings.sdk_disabled:
        _process.start(_define, multiprocess=multiprocess)
    if not settings.sdk_disabled:
        _runtime.start(counter, histogram, gauge)


def _restart_after_fork() -> None:
    pusher = _live.get("pusher")
    if pusher is not None:
        pusher.start()
    _process.restart_after_fork()
    _runtime.restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)


def reset() -> None:
    """Forget every instrument and the OTel wiring; back to single-process mode (tests)."""
    with _lock:
        for instrument in _instruments.values():
            instrument.detach(_registry)
        _instruments.clear()
        collector = _live.pop("collector", None)
        if collector is not None:
            with contextlib.suppress(KeyError):
                _registry.unregister(collector)
        _live.clear()
        _process.stop()
        _runtime.stop()
        _multiprocess.disable()
        _prometheus.forget()
        _own_families.forget()
        _config.update(namespace=None, limit=2000)
        forget_warnings()
