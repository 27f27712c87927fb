"""Fault injection in decorated functions: ``@obs.traced`` (and ``timed``/``counted``) is a
fault point named after the function, off unless the process is armed, and faulted only
by rules that name it; an injected fault is marked on the function's span, counted and
logged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.trace import StatusCode

import unified_obs as obs
from unified_obs.resilience import faults
from unified_obs.resilience.faults import FaultRule, InjectedFault
from unified_obs.testing import capture


@pytest.fixture(autouse=True)
def _no_faults() -> Iterator[None]:
    faults.reset()
    yield
    faults.reset()


@obs.traced(name="payments.charge")
def charge() -> str:
    """A traced function the rules below name."""
    return "charged"


@obs.traced(name="search.query")
async def search() -> str:
    """A traced coroutine function."""
    return "found"


@obs.counted("jobs.processed")
def process() -> str:
    """A counted function: a fault point too."""
    return "done"


ERROR_FOR_CHARGE = FaultRule(kind="error", percentage=100, targets=("payments.charge",))


def test_traced_functions_are_not_faulted_unless_armed() -> None:
    """A 100 % rule naming the function does nothing in a process set up without
    ``faults_enabled``, nor in one never set up; only ``faults_enabled=True`` arms it."""
    faults.configure(ERROR_FOR_CHARGE)
    assert charge() == "charged"
    with capture():
        faults.configure(ERROR_FOR_CHARGE)
        assert charge() == "charged"
    with capture(faults_enabled=True):
        faults.configure(ERROR_FOR_CHARGE)
        with pytest.raises(InjectedFault):
            charge()


def test_only_rules_naming_the_function_fault_it() -> None:
    """Armed, a catch-all rule (no routes, no targets; meant for requests), a rule for a
    route and a rule for another target leave the decorated functions alone."""
    faults.configure(
        FaultRule(kind="abort", percentage=100),
        FaultRule(kind="abort", percentage=100, routes=("/pay*",)),
        FaultRule(kind="error", percentage=100, targets=("elsewhere",)),
    )
    faults.arm(True)
    assert charge() == "charged"
    assert asyncio.run(search()) == "found"
    assert process() == "done"


def test_injected_error_is_marked_on_the_span_counted_and_logged() -> None:
    """A sync traced function under an ``error`` rule raises the configured exception in
    its own span, which carries ``fault.injected``, the kind and the experiment id and
    has the Error status; the fault is counted by kind and target and logged once as
    ``fault.injected`` (and the failure as ``function.failed``); the body never runs."""
    ran: list[str] = []

    @obs.traced(name="payments.charge")
    def charge_and_note() -> None:
        ran.append("body")

    faults.configure(
        FaultRule(kind="error", percentage=100, targets=("payments.charge",), exception=OSError),
        experiment_id="exp-7",
    )
    with capture(faults_enabled=True) as cap:
        with pytest.raises(OSError, match="fault injected"):
            charge_and_note()
        assert ran == []
        span = cap.span("payments.charge")
        attributes = dict(span.attributes or {})
        assert attributes["fault.injected"] is True
        assert attributes["fault.kind"] == "error"
        assert attributes["chaos.experiment.id"] == "exp-7"
        assert attributes["error.type"] == "OSError"
        assert span.status.status_code is StatusCode.ERROR
        injected = "unified_obs.faults.injected"
        assert cap.metric(injected, kind="error", target="payments.charge") == 1
        events = [(r["event"], r["level"]) for r in cap.logs if r["event"].startswith(("fa", "fu"))]
        assert events == [("fault.injected", "warning"), ("function.failed", "error")]


def test_async_delay_and_abort_are_marked_on_the_span() -> None:
    """An ``async`` traced function under a delay and an abort rule waits the delay
    (``asyncio.sleep``), then raises ``InjectedFault`` with the status; both show on
    its span."""
    faults.configure(
        FaultRule(kind="delay", percentage=100, delay=0.001, targets=("search.query",)),
        FaultRule(kind="abort", percentage=100, status=504, targets=("search.query",)),
    )
    with capture(faults_enabled=True) as cap:
        with pytest.raises(InjectedFault) as caught:
            asyncio.run(search())
        assert caught.value.status == 504
        attributes = dict(cap.span("search.query").attributes or {})
        assert attributes["fault.kind"] == "delay+abort"
        assert attributes["fault.delay_ms"] == 1.0
        assert attributes["fault.status"] == 504
        assert cap.metric("function.calls", function="search.query", outcome="error") == 1


def test_counted_function_is_a_fault_point_without_a_span() -> None:
    """``@obs.counted("jobs.processed")`` makes no span, yet a rule naming it faults the
    call, which its counter records as an error."""
    faults.configure(FaultRule(kind="error", percentage=100, targets=("jobs.processed",)))
    with capture(faults_enabled=True) as cap:
        with pytest.raises(InjectedFault):
            process()
        assert cap.spans == ()
        kind = f"{InjectedFault.__module__}.InjectedFault"
        assert cap.metric("jobs.processed", outcome="error", error_type=kind) == 1
        found = cap.metric("unified_obs.faults.injected", kind="error", target="jobs.processed")
        assert found == 1


def test_an_unarmed_process_never_enters_the_fault_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not armed (the default), a decorated call reads one flag and goes on: the fault
    code is not entered at all, even with a rule naming the function."""
    from unified_obs.decorators import _wrappers

    def entered(target: str) -> None:
        raise AssertionError(f"fault code entered for {target}")

    monkeypatch.setattr(_wrappers, "inject_named", entered)
    monkeypatch.setattr(_wrappers, "inject_named_async", entered)
    faults.configure(ERROR_FOR_CHARGE)
    with capture():
        assert charge() == "charged"
        assert asyncio.run(search()) == "found"
        assert process() == "done"


def test_new_rules_reach_decorated_functions_at_once() -> None:
    """The set of targets the rules name is kept per plan: configuring new rules in an
    armed process faults a function the old rules did not name, from the next call."""
    faults.configure(FaultRule(kind="error", percentage=100, targets=("elsewhere",)))
    faults.arm(True)
    assert charge() == "charged"
    faults.configure(ERROR_FOR_CHARGE)
    with pytest.raises(InjectedFault):
        charge()
    faults.configure()
    assert charge() == "charged"
