"""Interleaved micro-benchmark harness: every case of a group runs once per round, in a
fresh random order, so drift on a noisy machine hits all cases alike and ratios hold.

A bench module defines ``groups() -> list[Group]``; each ``Group`` names an anchor case
and, optionally, budgets (``case -> max ratio against the anchor``) that are reported
as PASS/FAIL next to the numbers.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Group", "GroupResult", "run_group"]


@dataclass
class Group:
    """Cases measured side by side; ``anchor`` is the case every ratio divides by."""

    title: str
    cases: dict[str, Callable[[], Any]]
    anchor: str
    budgets: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    setup: Callable[[], Any] | None = None
    teardown: Callable[[], Any] | None = None
    budget_anchors: dict[str, str] = field(default_factory=dict)  # case -> other anchor


@dataclass
class GroupResult:
    """Median ns/op per case, p25-p75 spread, ratios and budget verdicts."""

    title: str
    anchor: str
    median_ns: dict[str, float]
    spread_ns: dict[str, tuple[float, float]]
    budgets: dict[str, tuple[float, float, bool]]  # case -> (ratio, budget, passed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "title": self.title,
            "anchor": self.anchor,
            "median_ns": self.median_ns,
            "spread_ns": self.spread_ns,
            "budgets": {
                k: {"ratio": r, "budget": b, "passed": ok} for k, (r, b, ok) in self.budgets.items()
            },
        }


def _calibrate(fn: Callable[[], Any], target_s: float) -> int:
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target_s / 4 or loops >= 1 << 22:
            return max(1, int(loops * target_s / max(elapsed, 1e-9)))
        loops *= 4


def _time(fn: Callable[[], Any], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops * 1e9


def run_group(group: Group, *, rounds: int = 15, target_s: float = 0.03) -> GroupResult:
    """Measure ``group`` and print its table; returns the numbers."""
    if group.setup:
        group.setup()
    try:
        loops = {name: _calibrate(fn, target_s) for name, fn in group.cases.items()}
        samples: dict[str, list[float]] = {name: [] for name in group.cases}
        names = list(group.cases)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                samples[name].append(_time(group.cases[name], loops[name]))
            gc.collect()
    finally:
        if group.teardown:
            group.teardown()
    result = _summarise(group, samples)
    print_result(result, group.notes)
    return result


def _summarise(group: Group, samples: dict[str, list[float]]) -> GroupResult:
    median = {k: statistics.median(v) for k, v in samples.items()}
    spread = {k: (_quantile(v, 0.25), _quantile(v, 0.75)) for k, v in samples.items()}
    verdicts = {}
    for case, budget in group.budgets.items():
        anchor = group.budget_anchors.get(case, group.anchor)
        ratio = median[case] / median[anchor]
        verdicts[case] = (ratio, budget, ratio <= budget)
    return GroupResult(group.title, group.anchor, median, spread, verdicts)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_result(result: GroupResult, notes: str = "") -> None:
    """A Markdown table: case, median ns, p25-p75, ratio to anchor, budget verdict."""
    anchor_ns = result.median_ns[result.anchor]
    print(f"\n### {result.title}\n")
    if notes:
        print(notes + "\n")
    print(f"| case | median ns | p25-p75 ns | x {result.anchor} | budget |")
    print("|---|---:|---:|---:|---|")
    for case, ns in result.median_ns.items():
        low, high = result.spread_ns[case]
        verdict = ""
        if case in result.budgets:
            ratio, budget, ok = result.budgets[case]
            verdict = f"{'PASS' if ok else 'FAIL'} {ratio:.2f} <= {budget:g}"
        print(f"| {case} | {ns:,.0f} | {low:,.0f}-{high:,.0f} | {ns / anchor_ns:.2f} | {verdict} |")
