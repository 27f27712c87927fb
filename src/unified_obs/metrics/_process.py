"""Process metrics: CPU, memory, file descriptors, threads and CPython GC counts, read
once and exported twice: over OTLP under semantic-convention names, and on ``/metrics``
as the very families ``prometheus_client``'s process and GC collectors show.

| OTLP (semantic conventions v1.44) | ``/metrics`` |
|---|---|
| ``process.cpu.time{cpu.mode}`` | ``process_cpu_seconds_total`` (user + system) |
| ``process.memory.usage`` | ``process_resident_memory_bytes`` |
| ``process.memory.virtual`` | ``process_virtual_memory_bytes`` |
| ``process.unix.file_descriptor.count`` | ``process_open_fds`` |
| ``process.thread.count`` | ``process_threads`` |
| ``cpython.gc.collections{cpython.gc.generation}`` | ``python_gc_collections_total{generation}`` |
| ``cpython.gc.collected_objects{...}`` | ``python_gc_objects_collected_total{...}`` |
| ``cpython.gc.uncollectable_objects{...}`` | ``python_gc_objects_uncollectable_total{...}`` |
| ``unified_obs.process.file_descriptor.limit`` | ``process_max_fds`` |
| ``unified_obs.process.start_time`` | ``process_start_time_seconds`` |

The last two have no convention, so their OTLP names are the library's own.  The
instruments hold the values (under their semantic-convention Prometheus names, in no
registry); :func:`prometheus_families` is how ``/metrics`` shows them: the names, label
names, types, units and HELP texts of ``prometheus_client``'s collectors (which are
removed while these run, so each family is there once), the CPU time summed over its
modes, no ``_created`` series and no scope labels -- dashboards and alerts written for
``prometheus_client`` keep working.  ``process_threads`` is the one family it does not
have (``prometheus_client`` has none for threads).

Values are read before every read of the metrics (a scrape, an OTLP push, a
``metrics.value`` of one of their names: :func:`reads`); in
multiprocess mode every worker also refreshes its own every ``interval`` seconds (a
scrape reaches one worker only): CPU and GC counts are counters summed over all workers,
dead ones included; memory, descriptors, threads and start time ``liveall`` gauges, one
series per live worker (``pid`` label).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import prometheus_client
from prometheus_client import REGISTRY, ProcessCollector
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from . import _multiprocess
from ._exposition import before_every_read
from ._instruments import Definition
from ._names import prom_label, prom_name

__all__ = [
    "ProcessMetrics",
    "Shown",
    "current",
    "default_collectors",
    "prometheus_families",
    "reads",
    "restart_after_fork",
    "start",
    "stop",
    "thread_count",
]

Define = Callable[[Definition], Any]
"""How an instrument is defined (``metrics._define``: get-or-create, checked)."""

_GAUGES: Final = {  # prometheus_client's family name -> (OTLP name, description, unit)
    "process_resident_memory_bytes": (
        "process.memory.usage", "The amount of physical memory in use.", "By"
    ),
    "process_virtual_memory_bytes": (
        "process.memory.virtual", "The amount of committed virtual memory.", "By"
    ),
    "process_open_fds": (
        "process.unix.file_descriptor.count",
        "Number of unix file descriptors in use by the process.", "{file_descriptor}",
    ),
    "process_max_fds": (
        "unified_obs.process.file_descriptor.limit", "Maximum number of open file descriptors.",
        "{file_descriptor}",
    ),
    "process_start_time_seconds": (
        "unified_obs.process.start_time", "Start time of the process since the Unix epoch.", "s"
    ),
}  # fmt: skip
_GC_COUNTS: Final = {  # gc.get_stats() key -> (OTLP name, unit, Prometheus name, description)
    "collections": (
        "cpython.gc.collections", "{collection}", "python_gc_collections",
        "The number of times a generation was collected since interpreter start.",
    ),
    "collected": (
        "cpython.gc.collected_objects", "{object}", "python_gc_objects_collected",
        "The total number of objects collected inside a generation since interpreter start.",
    ),
    "uncollectable": (
        "cpython.gc.uncollectable_objects", "{object}", "python_gc_objects_uncollectable",
        "The total number of objects found uncollectable inside a generation since "
        "interpreter start.",
    ),
}  # fmt: skip
_GC_NAMES: Final = tuple((key, spec[2]) for key, spec in _GC_COUNTS.items())
GENERATION: Final = "cpython.gc.generation"
CPU_MODE: Final = "cpu.mode"
_REPLACED: Final = (prometheus_client.PROCESS_COLLECTOR, prometheus_client.GC_COLLECTOR)
_PLATFORM: Final = prometheus_client.PLATFORM_COLLECTOR


def default_collectors(registered: bool, *, platform: bool = True) -> None:
    """Register (or remove) ``prometheus_client``'s own process and GC collectors, and its
    platform collector (``python_info``) too unless ``platform`` is false."""
    for collector in (*_REPLACED, _PLATFORM) if platform else _REPLACED:
        with contextlib.suppress(KeyError, ValueError):
            if registered:
                REGISTRY.register(collector)
            else:
                REGISTRY.unregister(collector)


def thread_count() -> int:
    """The process's threads (``/proc`` counts native ones too), else Python's."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return threading.active_count()


@dataclass(frozen=True)
class Shown:
    """How ``/metrics`` shows one stored family: under ``prometheus_client``'s ``name``,
    ``documentation`` and ``unit``, its labels ``renamed``, the ``summed`` ones left out
    (the samples that then have one label set are added up), without ``_created`` samples
    or exemplars."""

    name: str
    documentation: str
    unit: str = ""
    renamed: Mapping[str, str] = field(default_factory=dict)
    summed: frozenset[str] = frozenset()

    def show(self, family: Metric) -> Metric:
        """``family`` (one stored family, single- or multiprocess) as ``/metrics`` shows it."""
        shown = Metric(self.name, self.documentation, family.type, self.unit)
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        for sample in family.samples:
            suffix = sample.name[len(family.name) :]
            if suffix == "_created":
                continue
            labels = {
                self.renamed.get(key, key): value
                for key, value in sample.labels.items()
                if key not in self.summed
            }
            key = (suffix, tuple(sorted(labels.items())))
            earlier = totals.get(key)
            total = sample.value + (earlier.value if earlier is not None else 0.0)
            totals[key] = sample._replace(
                name=self.name + suffix, labels=labels, value=total, exemplar=None
            )
        shown.samples = list(totals.values())
        return shown


def prometheus_families(families: Iterable[Metric], shown: Mapping[str, Shown]) -> Iterator[Metric]:
    """``families`` with the stored ones (``shown``'s keys) as ``/metrics`` shows them."""
    for family in families:
        view = shown.get(family.name)
        yield family if view is None else view.show(family)


class _Stored(Definition):
    """A definition whose metric only holds the values (and writes them to the
    multiprocess files): a plain ``prometheus_client`` counter or gauge in no registry, so
    that nothing shows it on ``/metrics`` but :class:`Shown`, and under a name of its own
    (so no scope labels are added)."""

    def build(self, registry: CollectorRegistry | None, namespace: str | None) -> Any:
        """The metric, registered nowhere."""
        name, text = self.prom_name(namespace), self.description or self.name
        labels = [prom_label(label) for label in self.labels]
        if self.kind == "counter":
            return PromCounter(name, text, labels, registry=None)
        mode: Any = self.multiprocess_mode
        return PromGauge(name, text, labels, registry=None, multiprocess_mode=mode)


def _stored(kind: str, name: str, text: str, unit: str, labels: tuple[str, ...] = ()) -> _Stored:
    prom_kind = "gauge" if kind == "up_down_counter" else kind
    mode = "liveall" if kind == "up_down_counter" else ""
    stored_name = prom_name(name, unit, prom_kind)  # the semantic convention's, no namespace
    return _Stored(kind, name, text, unit, labels, None, mode, prometheus_name=stored_name)


def _templates(process: ProcessCollector) -> dict[str, Metric]:
    """``prometheus_client``'s own process and GC families (name, type, unit, HELP)."""
    own = itertools.chain(process.collect(), _REPLACED[1].collect())
    return {family.name: family for family in own}


def _shown_as(
    name: str,
    template: Metric | None,
    description: str,
    renamed: Mapping[str, str],
    summed: frozenset[str],
) -> Shown:
    """``name`` as ``prometheus_client`` shows it; with no ``template`` (``process_threads``,
    which it does not have) under ``description``."""
    if template is None:
        return Shown(name, description, "", renamed, summed)
    return Shown(name, template.documentation, template.unit, renamed, summed)


class ProcessMetrics:
    """This process's CPU, memory, descriptors, threads and GC counts."""

    def __init__(self, define: Define, *, interval: float | None) -> None:
        self._source = ProcessCollector(registry=None)
        self._cpu = define(
            _stored("counter", "process.cpu.time",
                    "Total CPU seconds broken down by different modes.", "s", (CPU_MODE,))
        )  # fmt: skip
        self._gauges = {
            prom: define(_stored("up_down_counter", name, text, unit))
            for prom, (name, text, unit) in _GAUGES.items()
        }
        self._threads = define(
            _stored("up_down_counter", "process.thread.count", "Process threads count.",
                    "{thread}")
        )  # fmt: skip
        self._gc = {
            key: define(_stored("counter", name, text, unit, (GENERATION,)))
            for key, (name, unit, _, text) in _GC_COUNTS.items()
        }
        self.shown = self._shown()
        self.names = self._names()
        self.collector = _Exposed(self)
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._interval = interval
        self._stop = threading.Event()
        self.start()

    def _shown(self) -> dict[str, Shown]:
        """Each stored family's ``/metrics`` form (``prometheus_client``'s), by stored name."""
        templates = _templates(self._source)
        generation = {prom_label(GENERATION): "generation"}
        forms: list[tuple[Any, str, Mapping[str, str], frozenset[str]]] = [
            (self._cpu, "process_cpu_seconds", {}, frozenset({prom_label(CPU_MODE)})),
            (self._threads, "process_threads", {}, frozenset()),
            *((self._gauges[name], name, {}, frozenset()) for name in _GAUGES),
            *((self._gc[key], gc_name, generation, frozenset()) for key, gc_name in _GC_NAMES),
        ]
        return {
            instrument.definition.prometheus_name: _shown_as(
                name, templates.get(name), instrument.definition.description, renamed, summed
            )
            for instrument, name, renamed, summed in forms
        }

    def _names(self) -> frozenset[str]:
        """Every name a read of one name finds these values under: the instruments', their
        stored and shown families' and those families' samples'."""
        definitions = [instrument.definition for instrument in self.stored()]
        families = {d.prometheus_name for d in definitions} | {s.name for s in self.shown.values()}
        samples = {family + "_total" for family in families}
        return frozenset({d.name for d in definitions} | families | samples)

    def stored(self) -> list[Any]:
        """Every instrument holding the values."""
        return [self._cpu, self._threads, *self._gauges.values(), *self._gc.values()]

    def show(self, families: Iterable[Metric]) -> Iterator[Metric]:
        """``families`` with the stored ones as ``/metrics`` shows them."""
        return prometheus_families(families, self.shown)

    def start(self) -> None:
        """Start, or go on in a forked child (whose CPU times start from zero while its GC
        counts go on from the parent's), with the refresh thread when there is an interval."""
        self._seen = {key: seen for key, seen in self._seen.items() if key[0] != self._cpu.name}
        self._lock = threading.Lock()  # a fork taken mid-refresh must not leave it held
        self._stop = threading.Event()
        if self._interval is not None:
            thread = threading.Thread(target=self._run, name="unified_obs-process", daemon=True)
            thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()

    def _run(self) -> None:
        self.refresh()
        while self._interval is not None and not self._stop.wait(self._interval):
            self.refresh()

    def refresh(self) -> None:
        """Read ``/proc``, the CPU times and the GC now; never raises."""
        with self._lock, contextlib.suppress(Exception):  # a broken /proc must not break a scrape
            self._refresh()

    def _refresh(self) -> None:
        for name, value in self._proc_values():
            self._gauges[name].labels().set(value)
        self._threads.labels().set(thread_count())
        times = os.times()
        self._add(self._cpu, "user", times.user)
        self._add(self._cpu, "system", times.system)
        for generation, stats in enumerate(gc.get_stats()):
            for key, counter in self._gc.items():
                self._add(counter, str(generation), float(stats[key]))

    def _proc_values(self) -> Iterator[tuple[str, float]]:
        """prometheus_client's reading of ``/proc`` (memory, descriptors, start time)."""
        for family in self._source.collect():
            if family.name in self._gauges:
                yield family.name, float(family.samples[0].value)

    def _add(self, counter: Any, label: str, total: float) -> None:
        """Turn a running total into counter increments (a new process starts from 0)."""
        key = (counter.name, label)
        delta = total - self._seen.get(key, 0.0)
        series = counter.labels(label)  # a zero is a value too: the series exists from the start
        if delta > 0:
            series.inc(delta)
        self._seen[key] = total


class _Exposed(Collector):
    """The stored values as ``/metrics`` shows them (single-process mode; in multiprocess
    mode the same view is applied to the files' sums, see :func:`start`)."""

    def __init__(self, process: ProcessMetrics) -> None:
        self._process = process

    def collect(self) -> Iterable[Metric]:
        """The process and GC families, from the instruments' series (refreshed already)."""
        return list(self._process.show(map(_stored_family, self._process.stored())))


def _stored_family(instrument: Any) -> Metric:
    """One instrument's series as the stored family (what multiprocess files sum to)."""
    definition = instrument.definition
    kind = "counter" if definition.kind == "counter" else "gauge"
    family = Metric(definition.prometheus_name, definition.description, kind)
    sample_name = family.name + ("_total" if kind == "counter" else "")
    names = [prom_label(label) for label in definition.labels]
    family.samples = [
        Sample(sample_name, dict(zip(names, key, strict=True)), bound.value())
        for key, bound in instrument.series()
    ]
    return family


_live: list[ProcessMetrics] = []
"""The process metrics once ``setup()`` started them (at most one)."""


def start(define: Define, *, multiprocess: bool) -> None:
    """Start the process metrics in place of ``prometheus_client``'s collectors (``setup()``;
    a second call keeps the first); in multiprocess mode a thread refreshes every 10 s."""
    if not _live:
        default_collectors(registered=False, platform=multiprocess)
        process = ProcessMetrics(define, interval=10.0 if multiprocess else None)
        _live.append(process)
        with contextlib.suppress(ValueError):  # a registry showing these names keeps its own
            REGISTRY.register(process.collector)
        _multiprocess.add_view(process.show)
        before_every_read(refresh, only_for=reads)


def current() -> ProcessMetrics | None:
    """The running process metrics, if started."""
    return _live[0] if _live else None


def reads(name: str) -> bool:
    """Whether ``name`` is one of the process metrics' (``metrics.value`` refreshes them
    only then: ``/debug/telemetry`` reads a dozen other values per page)."""
    return any(name in process.names for process in _live)


def refresh() -> None:
    """Read the values now (before every read of the metrics)."""
    for process in _live:
        process.refresh()


def stop() -> None:
    """Stop and forget the process metrics; ``prometheus_client``'s collectors come back
    (``metrics.reset()``)."""
    while _live:
        process = _live.pop()
        process.stop()
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(process.collector)
        _multiprocess.remove_view(process.show)
    default_collectors(registered=True)


def restart_after_fork() -> None:
    """In a forked child: counts from zero, a new refresh thread in multiprocess mode."""
    for process in _live:
        process.start()
