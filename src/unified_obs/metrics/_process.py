"""Process metrics that survive multiprocess mode.

``prometheus_client``'s process, platform and GC collectors read the scraping process
only, so in multiprocess mode they are replaced by instruments every worker refreshes
(every ``interval`` seconds and before each scrape it serves): CPU seconds and GC
collections are counters summed over all workers, dead ones included; resident and
virtual memory, open and maximum file descriptors and start time are ``liveall`` gauges,
one series per live worker (``pid`` label).  The Prometheus names are the usual ones.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable
from typing import Any, Final

import prometheus_client
from prometheus_client import REGISTRY, ProcessCollector

__all__ = ["ProcessMetrics", "default_collectors"]

_GAUGES: Final = {
    "process_resident_memory_bytes": ("process.resident_memory", "Resident memory size.", "By"),
    "process_virtual_memory_bytes": ("process.virtual_memory", "Virtual memory size.", "By"),
    "process_open_fds": ("process.open_fds", "Number of open file descriptors.", ""),
    "process_max_fds": ("process.max_fds", "Maximum number of open file descriptors.", ""),
    "process_start_time_seconds": ("process.start_time", "Start time since the epoch.", "s"),
}
_DEFAULT_COLLECTORS: Final = (
    prometheus_client.PROCESS_COLLECTOR,
    prometheus_client.PLATFORM_COLLECTOR,
    prometheus_client.GC_COLLECTOR,
)


def default_collectors(registered: bool) -> None:
    """Register (or remove) ``prometheus_client``'s own per-process collectors."""
    for collector in _DEFAULT_COLLECTORS:
        with contextlib.suppress(KeyError, ValueError):
            if registered:
                REGISTRY.register(collector)
            else:
                REGISTRY.unregister(collector)


class ProcessMetrics:
    """This worker's process metrics, written into the multiprocess files."""

    def __init__(self, counter: Callable[..., Any], gauge: Callable[..., Any], interval: float):
        self._source = ProcessCollector(registry=None)
        self._cpu = counter("process.cpu", "Total user and system CPU time.", unit="s")
        self._gc = counter(
            "python.gc.collections", "Collections per GC generation.", labels=("generation",)
        )
        self._gauges = {
            prom: gauge(name, text, unit=unit, multiprocess_mode="liveall")
            for prom, (name, text, unit) in _GAUGES.items()
        }
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._interval = interval
        self._stop = threading.Event()
        self.start()

    def start(self) -> None:
        """Start (or, in a forked child, restart) the refresh thread."""
        self._seen = {}
        self._stop = threading.Event()
        thread = threading.Thread(target=self._run, name="unified_obs-process", daemon=True)
        thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()

    def _run(self) -> None:
        self.refresh()
        while not self._stop.wait(self._interval):
            self.refresh()

    def refresh(self) -> None:
        """Read ``/proc`` and the GC now; never raises."""
        with self._lock, contextlib.suppress(Exception):  # a broken /proc must not break a scrape
            self._refresh()

    def _refresh(self) -> None:
        for family in self._source.collect():
            value = float(family.samples[0].value)
            if family.name in self._gauges:
                self._gauges[family.name].set(value)
            elif family.name == "process_cpu_seconds":
                self._add("cpu", value, self._cpu.inc)
        for generation, stats in enumerate(gc.get_stats()):
            label = str(generation)
            self._add(f"gc{label}", float(stats["collections"]), self._gc.labels(label).inc)

    def _add(self, key: str, total: float, inc: Callable[[float], None]) -> None:
        """Turn a running total into counter increments (a new process starts from 0)."""
        delta = total - self._seen.get(key, 0.0)
        if delta > 0:
            inc(delta)
        self._seen[key] = total
