"""What the runtime metrics cost: the CPU of an idle asyncio service, and GC-heavy work.

Idle service (self-timed): a fresh interpreter runs ``setup()`` and an asyncio loop that
does nothing for 2 s, then prints the CPU seconds (user + system, ``resource``) those 2 s
cost.  "runtime metrics on" watches the loop (the lag timer every 50 ms, the tasks gauge,
the GC hook, the flush thread once a second); "off" stops them right after ``setup()``.
Budget: on <= 1 % of one core, i.e. the column's value below 20 ms per 2 s window (the
table's ns are CPU ns per window), judged on the printed absolute numbers, not a ratio.

GC-heavy work: building and dropping 20 000 small reference cycles (about 30 young
collections each run) with the GC-pause hook installed against without it.  Budget:
<= 1.05x.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Final

from benchmarks._harness import Group
from unified_obs.metrics._runtime import _PauseRing

_IDLE: Final = textwrap.dedent(
    """
    import asyncio, resource, sys
    import unified_obs as obs
    from unified_obs import metrics
    from unified_obs.metrics import _runtime

    obs.setup(service_name="bench", environ={}, traces_exporter="none", log_stdlib=False)
    if sys.argv[1] == "off":
        _runtime.stop()

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


def groups() -> list[Group]:
    """The two groups above."""
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
    ]
