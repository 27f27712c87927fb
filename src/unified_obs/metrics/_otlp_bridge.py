"""The bridges between the one store (``prometheus_client``) and OpenTelemetry.

- :func:`instruments_to_metrics` turns our instruments into OTel SDK metric data
  (cumulative, OTel names and units, exemplars, ``otel.metric.overflow`` for the
  overflow series) for the OTLP exporter; label values go back to the convention's
  types (``http.response.status_code`` is an int) and empty ones are left out (an
  empty ``error.type`` means "no error", which the convention says by its absence);
- :class:`SdkReader` is a pull reader on the SDK ``MeterProvider`` that metrics recorded
  through the OpenTelemetry API (other instrumentations) go to, and
  :class:`OtelCollector` shows what it reads on ``/metrics`` by the specification's
  rules (unit words without rescaling, ``# UNIT``, the scope as ``otel_scope_name`` and
  ``otel_scope_version`` labels, attribute values as the specification writes them);
- :class:`Pusher` exports both on the interval, and once more at flush and shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from opentelemetry.sdk.metrics import Exemplar as OtelExemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric as PromFamily
from prometheus_client.utils import floatToGoString

from .._semconv import INT_ATTRIBUTES, SCHEMA_URL, SCOPE_NAME, library_version
from ._instruments import OVERFLOW, Instrument
from ._names import prom_labels, prom_name, unit_word
from ._series import BoundCounter, BoundHistogram

__all__ = ["OtelCollector", "Pusher", "SdkReader", "instruments_to_metrics"]

_log: Final = logging.getLogger("unified_obs")
_CUMULATIVE: Final = AggregationTemporality.CUMULATIVE
_SCOPE: Final = InstrumentationScope(SCOPE_NAME, library_version(), SCHEMA_URL)
_PROCESS_START_NS: Final = time.time_ns()


def _attributes(instrument: Instrument[Any], key: tuple[str, ...]) -> dict[str, Any]:
    if key and all(value == OVERFLOW for value in key):
        return {"otel.metric.overflow": True}
    pairs = zip(instrument.definition.labels, key, strict=True)
    return {name: _typed(name, value) for name, value in pairs if value != ""}


def _typed(name: str, value: str) -> str | int:
    """The label value as the convention types the attribute (``"200"`` -> ``200``)."""
    if name in INT_ATTRIBUTES:
        try:
            return int(value)
        except ValueError:  # not a number after all: sent as recorded
            return value
    return value


def _exemplars(exemplar: Any) -> list[OtelExemplar]:
    if exemplar is None:
        return []
    try:
        return [
            OtelExemplar(
                filtered_attributes={},
                value=float(exemplar.value),
                time_unix_nano=int(exemplar.timestamp * 1e9),
                span_id=int(exemplar.labels["span_id"], 16),
                trace_id=int(exemplar.labels["trace_id"], 16),
            )
        ]
    except (KeyError, ValueError, TypeError):
        return []


def _number_points(instrument: Instrument[Any], now: int) -> list[NumberDataPoint]:
    start = int(instrument.created * 1e9)
    points = []
    for key, bound in instrument.series():
        exemplar = bound.exemplar() if isinstance(bound, BoundCounter) else None
        points.append(
            NumberDataPoint(
                attributes=_attributes(instrument, key),
                start_time_unix_nano=start,
                time_unix_nano=now,
                value=bound.value(),
                exemplars=_exemplars(exemplar),
            )
        )
    return points


def _histogram_points(instrument: Instrument[Any], now: int) -> list[HistogramDataPoint]:
    start = int(instrument.created * 1e9)
    points = []
    for key, bound in instrument.series():
        assert isinstance(bound, BoundHistogram)
        bounds, counts, total, exemplars = bound.snapshot()
        points.append(
            HistogramDataPoint(
                attributes=_attributes(instrument, key),
                start_time_unix_nano=start,
                time_unix_nano=now,
                count=int(sum(counts)),
                sum=total,
                bucket_counts=[int(c) for c in counts],
                explicit_bounds=bounds,
                min=None,  # type: ignore[arg-type]  # not tracked; optional in OTLP
                max=None,  # type: ignore[arg-type]
                exemplars=[e for x in exemplars for e in _exemplars(x)],
            )
        )
    return points


def _to_metric(instrument: Instrument[Any], now: int) -> Metric:
    definition = instrument.definition
    data: Any
    if definition.kind == "histogram":
        data = Histogram(_histogram_points(instrument, now), _CUMULATIVE)
    elif definition.kind == "gauge":
        data = Gauge(_number_points(instrument, now))
    else:
        monotonic = definition.kind == "counter"
        data = Sum(_number_points(instrument, now), _CUMULATIVE, monotonic)
    return Metric(definition.name, definition.description, definition.unit, data)


def instruments_to_metrics(
    instruments: Iterable[Instrument[Any]], resource: Resource, extra: MetricsData | None = None
) -> MetricsData:
    """One ``MetricsData`` for ``resource``: our instruments, plus the SDK's scopes."""
    now = time.time_ns()
    ours = [_to_metric(instrument, now) for instrument in instruments]
    scopes = [ScopeMetrics(_SCOPE, ours, "")] if ours else []
    if extra is not None:
        scopes += [scope for rm in extra.resource_metrics for scope in rm.scope_metrics]
    return MetricsData([ResourceMetrics(resource, scopes, "")])


class SdkReader(MetricReader):
    """Pull reader for the SDK ``MeterProvider``: cumulative snapshots on demand."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality=dict.fromkeys(_instrument_classes(), _CUMULATIVE))
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def snapshot(self) -> MetricsData | None:
        """Collect now; ``None`` before the provider is attached or when nothing was recorded."""
        with self._lock:
            self._latest = None
            try:
                self.collect()
            except Exception:  # not attached to a provider yet, or already shut down
                return None
            return self._latest

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""


def _instrument_classes() -> list[type]:
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
    )

    return [
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    ]  # the synchronous gauge has no public class; cumulative is every class's default


class OtelCollector:
    """A ``prometheus_client`` collector showing what :class:`SdkReader` reads.

    A family named like one of ours is kept: ``_prometheus.plan`` merges the two
    (their scope labels tell them apart) or, for different types, names the clash."""

    def __init__(self, reader: SdkReader) -> None:
        self._reader = reader

    def describe(self) -> list[PromFamily]:
        """Nothing up front: names are only known at collection time."""
        return []

    def collect(self) -> list[PromFamily]:
        """Metric families converted from the SDK's current cumulative data."""
        data = self._reader.snapshot()
        if data is None:
            return []
        families = []
        for rm in data.resource_metrics:
            for scope in rm.scope_metrics:
                scope_labels = {
                    "otel_scope_name": scope.scope.name,
                    "otel_scope_version": scope.scope.version or "",
                }
                for metric in scope.metrics:
                    family = _family(metric, scope_labels)
                    if family is not None:
                        families.append(family)
        return families


def _family(metric: Metric, scope_labels: dict[str, str]) -> PromFamily | None:
    """One Prometheus family for an SDK metric: name and ``# UNIT`` from its unit (as
    recorded: never rescaled), its scope as labels; ``None`` for kinds not shown."""
    data = metric.data
    if not isinstance(data, (Sum, Gauge, Histogram)):
        return None
    kind = "counter" if isinstance(data, Sum) and data.is_monotonic else "gauge"
    kind = "histogram" if isinstance(data, Histogram) else kind
    name = prom_name(metric.name, metric.unit or "", kind)
    word = unit_word(metric.unit or "", kind)
    unit = word if name.endswith("_" + word) else ""
    help_text = metric.description or metric.name
    if isinstance(data, Histogram):
        family: PromFamily = HistogramMetricFamily(name, help_text, labels=None, unit=unit)
        for point in data.data_points:
            labels = {**prom_labels(point.attributes), **scope_labels}
            family.add_sample(name + "_count", labels, float(point.count))
            family.add_sample(name + "_sum", labels, float(point.sum))
            _add_buckets(family, name, point, labels)
        return family
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    family = cls(name, help_text, unit=unit)
    suffix = "_total" if kind == "counter" else ""
    for number in data.data_points:
        labels = {**prom_labels(number.attributes), **scope_labels}
        family.add_sample(name + suffix, labels, float(number.value))
    return family


def _add_buckets(
    family: PromFamily, name: str, point: HistogramDataPoint, labels: dict[str, str]
) -> None:
    running = 0
    bounds: Sequence[float] = [*point.explicit_bounds, float("inf")]
    for bound, count in zip(bounds, point.bucket_counts, strict=True):
        running += count
        le: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
        family.add_sample(name + "_bucket", {**labels, "le": le}, float(running))


def _data_points(data: MetricsData) -> int:
    """How many data points ``data`` holds."""
    return sum(
        len(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    )


class Pusher:
    """Exports on an interval from a daemon thread; ``flush``/``close`` export once more."""

    def __init__(
        self,
        exporter: MetricExporter,
        build: Callable[[], MetricsData],
        interval: float,
        on_export: Callable[[int, str | None], None] = lambda points, error: None,
    ) -> None:
        """``on_export(points, error)`` after each export call: the data points sent, and
        ``None`` on success or the kind of failure (never the exporter's message)."""
        self._exporter = exporter
        self._build = build
        self._interval = interval
        self._on_export = on_export
        self._stop = threading.Event()
        self._export_lock = threading.Lock()
        self._shutdown_lock = threading.Lock()
        self._exporter_down = False
        self.failures = 0
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start (or, in a forked child, restart) the export thread; not once closed."""
        if getattr(self, "_closed", False):
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unified_obs-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.export(self._interval)

    def export(self, timeout: float) -> bool:
        """Build and export one batch within ``timeout`` seconds; True on success."""
        points, error = 0, None
        with self._export_lock:
            try:
                data = self._build()
                points = _data_points(data)
                result = self._exporter.export(data, timeout_millis=max(timeout, 0.001) * 1000)
            except Exception as exc:
                _log.warning("unified_obs: metrics export raised", exc_info=True)
                result, error = None, f"{type(exc).__name__} raised"
        ok = getattr(result, "name", "") == "SUCCESS"
        if not ok:
            self.failures += 1
        self._on_export(points, None if ok else error or "the exporter returned FAILURE")
        return ok

    def flush(self, timeout: float) -> bool:
        """Export now."""
        return self.export(timeout)

    def close(self, timeout: float) -> bool:
        """Stop the thread, export a last time, shut the exporter down.

        The exporter retries on its own clock (``otlp_timeout``); shutting it down at 80 %
        of ``timeout`` ends its back-off, so a dead collector cannot keep this past the
        deadline (or keep retrying in the background afterwards)."""
        self._closed = True
        self._stop.set()
        timer = threading.Timer(max(timeout, 0.0) * 0.8, self._shutdown_exporter)
        timer.daemon = True
        timer.start()
        try:
            return self.export(timeout)
        finally:
            timer.cancel()
            self._shutdown_exporter()

    def _shutdown_exporter(self) -> None:
        with self._shutdown_lock:
            if not self._exporter_down:
                self._exporter_down = True
                self._exporter.shutdown()
