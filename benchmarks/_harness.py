"""Interleaved micro-benchmark harness: every case of a group runs once per round, in a
fresh random order, so drift on a noisy machine hits all cases alike and ratios hold.

A bench module defines ``groups() -> list[Group]``; each ``Group`` names an anchor case
and, optionally, budgets (``case -> max ratio against the anchor``) that are reported
as PASS/FAIL next to the numbers.

Two opt-ins: ``self_timed`` cases measure themselves (e.g. inside a child process) and
return seconds, one call per round; ``interval`` groups judge each case by its per-round
ratios to the anchor, whose mean and 95 % interval (mean ± 1.96 s.e., as ``wire.py``)
are printed: PASS when the whole interval is within the budget, FAIL when it is all
above, WITHIN NOISE otherwise (not counted as failed).
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
    self_timed: bool = False  # a case call returns its own seconds; no calibration
    interval: bool = False  # ratios and verdicts from the 95 % interval of per-round ratios


@dataclass
class GroupResult:
    """Median ns/op per case, p25-p75 spread, ratios and budget verdicts."""

    title: str
    anchor: str
    median_ns: dict[str, float]
    spread_ns: dict[str, tuple[float, float]]
    budgets: dict[str, tuple[float, float, bool]]  # case -> (ratio, budget, passed)
    intervals: dict[str, tuple[float, float, float]] = field(default_factory=dict)

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
            "intervals": {
                k: {"mean": mean, "low": low, "high": high}
                for k, (mean, low, high) in self.intervals.items()
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
        loops = (
            {} if group.self_timed else {n: _calibrate(f, target_s) for n, f in group.cases.items()}
        )
        samples: dict[str, list[float]] = {name: [] for name in group.cases}
        names = list(group.cases)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                fn = group.cases[name]
                samples[name].append(
                    float(fn()) * 1e9 if group.self_timed else _time(fn, loops[name])
                )
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
    intervals = {}
    if group.interval:
        for case in (c for c in samples if c != group.anchor):
            anchor = samples[group.budget_anchors.get(case, group.anchor)]
            ratios = [a / b for a, b in zip(samples[case], anchor, strict=True)]
            intervals[case] = ratio_interval(ratios)
    verdicts = {}
    for case, budget in group.budgets.items():
        if case in intervals:
            ratio = intervals[case][0]
            passed = verdict(intervals[case], budget) != "FAIL"
        else:
            ratio = median[case] / median[group.budget_anchors.get(case, group.anchor)]
            passed = ratio <= budget
        verdicts[case] = (ratio, budget, passed)
    return GroupResult(group.title, group.anchor, median, spread, verdicts, intervals)


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """The mean of per-round ratios and its 95 % interval (mean ± 1.96 s.e.)."""
    mean = statistics.fmean(ratios)
    error = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else 0.0
    return mean, mean - 1.96 * error, mean + 1.96 * error


def verdict(interval: tuple[float, float, float], budget: float) -> str:
    """PASS when the whole interval is within ``budget``, FAIL when all of it is above."""
    _, low, high = interval
    return "PASS" if high <= budget else "FAIL" if low > budget else "WITHIN NOISE"


def added_over_bare(variant: str, added_us: list[float], budget_us: float) -> str:
    """A verdict line for ``variant``'s per-round µs added over the bare app: the mean, its
    95 % interval and PASS / FAIL / WITHIN NOISE against ``budget_us``."""
    mean, low, high = interval = ratio_interval(added_us)
    return (
        f"- {variant}: {mean:+.0f} µs over bare (95 % {low:+.0f} to {high:+.0f}): "
        f"{verdict(interval, budget_us)} <= {budget_us:g} µs"
    )


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
        cell = _budget_cell(result, case)
        print(f"| {case} | {ns:,.0f} | {low:,.0f}-{high:,.0f} | {ns / anchor_ns:.2f} | {cell} |")


def _budget_cell(result: GroupResult, case: str) -> str:
    budget = result.budgets[case][1] if case in result.budgets else None
    if case in result.intervals:
        mean, low, high = result.intervals[case]
        shown = f"{mean:.2f} (95 % {low:.2f}–{high:.2f})"
        if budget is None:
            return f"{shown}, no budget"
        return f"{verdict(result.intervals[case], budget)} {shown} <= {budget:g}"
    if budget is None:
        return ""
    ratio, _, ok = result.budgets[case]
    return f"{'PASS' if ok else 'FAIL'} {ratio:.2f} <= {budget:g}"
