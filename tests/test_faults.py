"""Fault injection: off by default, armed only by the setting, capped, bounded, marked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import unified_obs as obs
from unified_obs import metrics
from unified_obs.errors import ConfigError
from unified_obs.resilience import faults
from unified_obs.resilience._fault_plan import choose
from unified_obs.resilience.faults import (
    HEADER_ABORT,
    HEADER_ABORT_PERCENTAGE,
    HEADER_DELAY,
    FaultPlan,
    FaultRule,
    InjectedFault,
)
from unified_obs.testing import capture

TRACE_IDS = [(n * 0x9E3779B97F4A7C15 + 12345) & ((1 << 128) - 1) for n in range(1, 4001)]


@pytest.fixture(autouse=True)
def _no_faults() -> Iterator[None]:
    faults.reset()
    yield
    faults.reset()


def _share(plan: FaultPlan, **request: Any) -> float:
    """The share of TRACE_IDS that get a fault under ``plan``."""
    hits = sum(choose(plan, trace_id=t, **request) is not None for t in TRACE_IDS)
    return hits / len(TRACE_IDS)


@faults.point("payments")
def charge() -> str:
    return "charged"


def test_configured_faults_do_nothing_until_armed() -> None:
    """Rules alone (even a 100 % abort with header control and a header asking for it)
    inject nothing: the process is not armed by default."""
    faults.configure(FaultRule(kind="abort", percentage=100), header_control=True)
    assert charge() == "charged"
    assert not faults.injector().armed
    assert faults.injector().begin(target="payments", headers={HEADER_ABORT: "503"}) is None


def test_arming_makes_configured_faults_happen() -> None:
    """Once armed, a 100 % abort rule for the target raises ``InjectedFault(503)``."""
    faults.configure(FaultRule(kind="abort", percentage=100, targets=("payments",)))
    faults.arm(True)
    with pytest.raises(InjectedFault) as caught:
        charge()
    assert caught.value.status == 503


def test_setup_arms_only_with_the_setting() -> None:
    """``setup()`` disarms by default and arms with ``faults_enabled=True`` or
    ``UNIFIED_OBS_FAULTS_ENABLED=true``."""
    rule = FaultRule(kind="error", percentage=100)
    with capture():
        faults.configure(rule)
        assert charge() == "charged"
    with capture(faults_enabled=True):
        faults.configure(rule)
        with pytest.raises(InjectedFault):
            charge()
    obs.setup(environ={"UNIFIED_OBS_FAULTS_ENABLED": "true"}, service_name="s")
    assert faults.injector().armed


def test_victims_follow_the_trace_id() -> None:
    """A trace is faulted the same way every time it is asked (retries meet the same
    fault), and 30 % of 4,000 traces get it within a point and a half."""
    plan = FaultPlan(rules=(FaultRule(kind="abort", percentage=30),), armed=True)
    assert _share(plan) == pytest.approx(0.30, abs=0.015)
    for trace_id in TRACE_IDS[:200]:
        first = choose(plan, trace_id=trace_id)
        assert all(choose(plan, trace_id=trace_id) == first for _ in range(3))


def test_rules_match_route_target_and_headers() -> None:
    """A rule applies only to its routes, its targets and requests carrying its headers."""
    rule = FaultRule(
        kind="abort", percentage=100, routes=("/orders",), headers={"X-Tenant": "canary"}
    )
    plan = FaultPlan(rules=(rule,), armed=True)
    canary = {"x-tenant": "canary"}
    assert choose(plan, route="/orders", headers=canary) is not None
    assert choose(plan, route="/users", headers=canary) is None
    assert choose(plan, route="/orders", headers={"x-tenant": "prod"}) is None
    targeted = FaultPlan(
        rules=(FaultRule(kind="delay", percentage=100, delay=1, targets=("db",)),), armed=True
    )
    assert choose(targeted, target="db") is not None
    assert choose(targeted, target="cache") is None


def test_header_percentage_is_capped_by_the_configured_one() -> None:
    """With header control, a request asking for 100 % of aborts gets the configured 10 %
    at most; without the header no rule fires; without header control headers are
    ignored."""
    rule = FaultRule(kind="abort", percentage=10)
    controlled = FaultPlan(rules=(rule,), armed=True, header_control=True)
    asking = {HEADER_ABORT: "418", HEADER_ABORT_PERCENTAGE: "100"}
    assert _share(controlled, headers=asking) == pytest.approx(0.10, abs=0.015)
    assert _share(controlled) == 0.0
    fault = next(f for t in TRACE_IDS if (f := choose(controlled, trace_id=t, headers=asking)))
    assert fault.status == 418
    lower = {HEADER_ABORT: "503", HEADER_ABORT_PERCENTAGE: "2"}
    assert _share(controlled, headers=lower) == pytest.approx(0.02, abs=0.01)
    uncontrolled = FaultPlan(rules=(rule,), armed=True)
    assert _share(uncontrolled, headers={HEADER_ABORT_PERCENTAGE: "100"}) == pytest.approx(
        0.10, abs=0.015
    )


@pytest.mark.parametrize("value", ["99999999", "nan", "-5", "1e400", "1" * 40, "abc"])
def test_header_delays_are_capped_and_bad_values_ignored(value: str) -> None:
    """A header-requested delay never exceeds ``max_delay``; a value that is not a finite
    non-negative number of milliseconds asks for nothing."""
    rule = FaultRule(kind="delay", percentage=100, delay=0.1)
    plan = FaultPlan(rules=(rule,), armed=True, header_control=True, max_delay=2.0)
    fault = choose(plan, trace_id=1, headers={HEADER_DELAY: value})
    if value == "99999999":
        assert fault is not None
        assert fault.delay == 2.0
    else:
        assert fault is None


def test_concurrent_faults_are_bounded_and_the_rest_counted() -> None:
    """With ``max_active=2``, five requests in flight get two faults; the other three
    pass untouched and count as overflow."""
    faults.configure(FaultRule(kind="delay", percentage=100, delay=1), max_active=2)
    faults.arm(True)
    injector = faults.injector()
    taken = [injector.begin(target="db", trace_id=n) for n in range(1, 6)]
    assert sum(f is not None for f in taken) == 2
    assert injector.active == 2
    assert metrics.value("unified_obs.faults.overflow", target="db") == 3
    injector.end()
    injector.end()
    assert injector.active == 0


def test_injected_fault_is_marked_on_the_span_and_counted() -> None:
    """The span around a faulted call carries ``fault.injected``, its kind, delay and
    status, and the experiment id; the injection is counted by kind and target."""
    faults.configure(
        FaultRule(kind="delay", percentage=100, delay=0.001),
        FaultRule(kind="abort", percentage=100, status=502),
        experiment_id="exp-42",
    )
    with capture(faults_enabled=True) as captured:
        with obs.span("work"), pytest.raises(InjectedFault):
            charge()
        attributes = dict(captured.span("work").attributes or {})
        assert attributes["fault.injected"] is True
        assert attributes["fault.kind"] == "delay+abort"
        assert attributes["fault.delay_ms"] == 1.0
        assert attributes["fault.status"] == 502
        assert attributes["chaos.experiment.id"] == "exp-42"
        assert (
            captured.metric("unified_obs.faults.injected", kind="delay+abort", target="payments")
            == 1
        )


def test_configured_exception_is_raised_in_async_code() -> None:
    """An ``error`` rule raises the exception class configured in code, in coroutines
    and ``async with`` blocks too."""
    faults.configure(FaultRule(kind="error", percentage=100, exception=TimeoutError))
    faults.arm(True)

    @faults.point("search")
    async def search() -> str:
        return "found"

    async def block() -> None:
        async with faults.point("search"):
            pass

    with pytest.raises(TimeoutError):
        asyncio.run(search())
    with pytest.raises(TimeoutError):
        asyncio.run(block())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "explode"),
        ("percentage", 101),
        ("percentage", float("nan")),
        ("delay", -1),
        ("status", 99),
        ("grpc_code", 0),
        ("exception", "os.system"),
    ],
)
def test_bad_rule_raises_config_error(field: str, value: Any) -> None:
    """An invalid rule raises ``ConfigError`` naming the field, when it is made."""
    options: dict[str, Any] = {"kind": "abort", "percentage": 1, field: value}
    with pytest.raises(ConfigError, match=field):
        FaultRule(**options)
