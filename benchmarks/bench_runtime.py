"""What the runtime metrics cost: the CPU of an idle asyncio service, and GC-heavy work.

Idle service (self-timed): a fresh interpreter runs ``setup()`` and an asyncio loop that
does nothing for 2 s, then prints the CPU seconds (user + system, ``resource``) those 2 s
cost.  "runtime metrics on" watches the loop (the lag timer every 50 ms, the tasks gauge,
the GC hook, the flush thread once a second); "off" is ``setup(runtime_metrics=False)``.
Budget: on <= 1 % of one core, i.e. the column's value below 20 ms per 2 s window (the
table's ns are CPU ns per window), judged on the printed absolute numbers, not a ratio.

GC-heavy work: building and dropping 20 000 small reference cycles (about 30 young
collections each run) with the GC-pause hook installed against without it.  Budget:
<= 1.05x.

Reading the process metrics (before every scrape and OTLP push): our refresh (``/proc``
through prometheus_client's reader, CPU times, GC counts, into the instruments) against
prometheus_client's own ``ProcessCollector.collect()``, which it replaces.  Budget: <= 3x
(a few microseconds a scrape either way).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Final

from prometheus_client import ProcessCollector

from benchmarks._harness import Group
from unified_obs import metrics
from unified_obs.metrics import _process
from unified_obs.metrics._instruments import Definition
from unified_obs.metrics._runtime import _PauseRing

_IDLE: Final = textwrap.dedent(
    """
    import asyncio, resource, sys
    import unified_obs as obs
    from unified_obs import metrics

    obs.setup(service_name="bench", environ={}, traces_exporter="none", log_stdlib=False,
              runtime_metrics=sys.argv[1] == "on")

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def main():
        metrics.watch_event_loop()
        await asyncio.sleep(0.2)
        start = cpu()
        await asyncio.sleep(2.0)
        print(cpu() - start)

    asyncio.run(main())
    """
)


def _idle(mode: str) -> Callable[[], float]:
    def run() -> float:
        done = subprocess.run(
            [sys.executable, "-c", _IDLE, mode], capture_output=True, text=True, timeout=60
        )
        return float(done.stdout.strip().splitlines()[-1])

    return run


class _Cycle:
    __slots__ = ("other",)

    def __init__(self) -> None:
        self.other: object = self


def _churn() -> None:
    for _ in range(20_000):
        _Cycle()


def _with_hook() -> None:
    ring = _PauseRing()
    gc.callbacks.append(ring.callback)
    try:
        _churn()
    finally:
        gc.callbacks.remove(ring.callback)


def _refresh() -> Callable[[], None]:
    """Our process metrics' refresh, on instruments of their own (defined once)."""
    defined: dict[str, object] = {}

    def define(definition: Definition) -> object:
        kind = {"up_down_counter": metrics.up_down_counter, "counter": metrics.counter}
        name = "bench." + definition.name
        found = defined.get(name) or kind[definition.kind](
            name, definition.description, labels=definition.labels, unit=definition.unit
        )
        defined[name] = found
        return found

    return _process.ProcessMetrics(define, interval=None).refresh


def _collect() -> Callable[[], object]:
    return ProcessCollector(registry=None).collect


def groups() -> list[Group]:
    """The three groups above."""
    return [
        Group(
            "Runtime metrics: CPU of an idle asyncio service per 2 s (ns of CPU)",
            {"runtime metrics off": _idle("off"), "runtime metrics on": _idle("on")},
            anchor="runtime metrics off",
            self_timed=True,
            notes="budget: 'on' below 20 000 000 ns (1 % of a core over 2 s)",
        ),
        Group(
            "Runtime metrics: GC-heavy work with the GC-pause hook",
            {"no hook": _churn, "GC-pause hook": _with_hook},
            anchor="no hook",
            budgets={"GC-pause hook": 1.05},
            interval=True,
        ),
        Group(
            "Runtime metrics: reading the process metrics once (before a scrape or push)",
            {
                "prometheus_client ProcessCollector": _collect(),
                "process metrics refresh": _refresh(),
            },
            anchor="prometheus_client ProcessCollector",
            budgets={"process metrics refresh": 3.0},
        ),
    ]
