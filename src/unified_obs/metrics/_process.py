"""Process metrics: CPU, memory, file descriptors, threads and CPython GC counts, recorded
once and exported twice, under semantic-convention names over OTLP and the usual
``prometheus_client`` names on ``/metrics``.

| OTLP (semantic conventions v1.44) | ``/metrics`` |
|---|---|
| ``process.cpu.time{cpu.mode}`` | ``process_cpu_seconds_total{cpu_mode}`` |
| ``process.memory.usage`` | ``process_resident_memory_bytes`` |
| ``process.memory.virtual`` | ``process_virtual_memory_bytes`` |
| ``process.unix.file_descriptor.count`` | ``process_open_fds`` |
| ``process.thread.count`` | ``process_threads`` |
| ``cpython.gc.collections{cpython.gc.generation}`` | ``python_gc_collections_total`` |
| ``cpython.gc.collected_objects{...}`` | ``python_gc_objects_collected_total`` |
| ``cpython.gc.uncollectable_objects{...}`` | ``python_gc_objects_uncollectable_total`` |
| ``unified_obs.process.file_descriptor.limit`` | ``process_max_fds`` |
| ``unified_obs.process.start_time`` | ``process_start_time_seconds`` |

The last two have no convention, so their OTLP names are the library's own.  The
``/metrics`` names stay those every Prometheus dashboard knows (``process_threads``, not
``process_thread_count``: ``promtool check metrics`` rejects a gauge named like a
histogram's count).  ``prometheus_client``'s own process and GC collectors are removed
while these run, so each family is on ``/metrics`` once.

Values are read before every read of the metrics (a scrape, an OTLP push); in
multiprocess mode every worker also refreshes its own every ``interval`` seconds (a
scrape reaches one worker only): CPU and GC counts are counters summed over all workers,
dead ones included; memory, descriptors, threads and start time ``liveall`` gauges, one
series per live worker (``pid`` label).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import prometheus_client
from prometheus_client import REGISTRY, ProcessCollector

from ._exposition import before_every_read
from ._instruments import Definition

__all__ = [
    "ProcessMetrics",
    "current",
    "default_collectors",
    "restart_after_fork",
    "start",
    "stop",
    "thread_count",
]

Define = Callable[[Definition], Any]
"""How an instrument is defined (``metrics._define``: get-or-create, checked)."""

_GAUGES: Final = {  # prometheus_client's sample name -> (OTLP name, description, unit)
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
GENERATION: Final = "cpython.gc.generation"
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


def _gauge(name: str, text: str, unit: str, prometheus_name: str) -> Definition:
    return Definition(
        "up_down_counter", name, text, unit, (), None, "liveall", prometheus_name=prometheus_name
    )


def _counter(name: str, text: str, unit: str, labels: tuple[str, ...], prom: str) -> Definition:
    return Definition("counter", name, text, unit, labels, prometheus_name=prom)


class ProcessMetrics:
    """This process's CPU, memory, descriptors, threads and GC counts."""

    def __init__(self, define: Define, *, interval: float | None) -> None:
        self._source = ProcessCollector(registry=None)
        self._cpu = define(
            _counter("process.cpu.time", "Total CPU seconds broken down by different modes.",
                     "s", ("cpu.mode",), "process_cpu_seconds")
        )  # fmt: skip
        self._gauges = {
            prom: define(_gauge(name, text, unit, prom))
            for prom, (name, text, unit) in _GAUGES.items()
        }
        self._threads = define(
            _gauge("process.thread.count", "Process threads count.", "{thread}", "process_threads")
        )
        self._gc = {
            key: define(_counter(name, text, unit, (GENERATION,), prom))
            for key, (name, unit, prom, text) in _GC_COUNTS.items()
        }
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._interval = interval
        self._stop = threading.Event()
        self.start()

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


_live: list[ProcessMetrics] = []
"""The process metrics once ``setup()`` started them (at most one)."""


def start(define: Define, *, multiprocess: bool) -> None:
    """Start the process metrics in place of ``prometheus_client``'s collectors (``setup()``;
    a second call keeps the first); in multiprocess mode a thread refreshes every 10 s."""
    if not _live:
        default_collectors(registered=False, platform=multiprocess)
        _live.append(ProcessMetrics(define, interval=10.0 if multiprocess else None))
        before_every_read(refresh)


def current() -> ProcessMetrics | None:
    """The running process metrics, if started."""
    return _live[0] if _live else None


def refresh() -> None:
    """Read the values now (before every read of the metrics)."""
    for process in _live:
        process.refresh()


def stop() -> None:
    """Stop and forget the process metrics; ``prometheus_client``'s collectors come back
    (``metrics.reset()``)."""
    while _live:
        _live.pop().stop()
    default_collectors(registered=True)


def restart_after_fork() -> None:
    """In a forked child: counts from zero, a new refresh thread in multiprocess mode."""
    for process in _live:
        process.start()
