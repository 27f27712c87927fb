"""Fault injection through the gRPC server interceptors, against real grpcio servers on
127.0.0.1 (sync and aio): off unless armed, then aborts with the rule's code, marked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.trace import SpanKind

from tests.test_grpc_support import (
    METHODS,
    aio_pair,
    attrs,
    call_aio,
    call_sync,
    spans_of,
    sync_pair,
    wait_until,
)
from unified_obs.resilience import faults
from unified_obs.resilience.faults import FaultRule
from unified_obs.testing import capture

UNAVAILABLE = FaultRule(kind="abort", percentage=100, grpc_code=14)


@pytest.fixture(autouse=True)
def _no_faults() -> Iterator[None]:
    faults.reset()
    yield
    faults.reset()


def test_rules_without_the_setting_change_no_call() -> None:
    """Configured rules, process not armed: every call shape answers OK."""
    with capture(handle_signals=False), sync_pair() as channel:
        faults.configure(UNAVAILABLE)
        for method in METHODS:
            assert call_sync(channel, method, b"ok")[0] is grpc.StatusCode.OK


@pytest.mark.parametrize("method", METHODS)
def test_armed_abort_answers_the_rules_code_and_marks_the_span(method: str) -> None:
    """Armed, a 100 % abort rule for the method makes every call shape answer
    UNAVAILABLE; the server span carries ``fault.injected`` and the experiment id."""
    with capture(handle_signals=False, faults_enabled=True) as cap:
        faults.configure(
            FaultRule(kind="abort", percentage=100, grpc_code=14, routes=(f"test.Echo/{method}",)),
            experiment_id="exp-7",
        )
        with sync_pair() as channel:
            code, details, _, _ = call_sync(channel, method, b"ok")
            other = next(m for m in METHODS if m != method)
            assert call_sync(channel, other, b"ok")[0] is grpc.StatusCode.OK
        assert code is grpc.StatusCode.UNAVAILABLE
        assert details == "fault injected by unified_obs"
        wait_until(lambda: len(spans_of(cap, SpanKind.SERVER)) >= 2)
        faulted = [s for s in spans_of(cap, SpanKind.SERVER) if attrs(s).get("fault.injected")]
        assert len(faulted) == 1
        assert attrs(faulted[0])["rpc.response.status_code"] == "UNAVAILABLE"
        assert attrs(faulted[0])["chaos.experiment.id"] == "exp-7"


def test_aio_abort_and_delay_apply_to_coroutines_and_streams() -> None:
    """Under grpc.aio, a delay plus an abort rule answer every call shape with the
    rule's code (here DEADLINE_EXCEEDED's cousin, RESOURCE_EXHAUSTED)."""

    async def main() -> list[grpc.StatusCode]:
        async with aio_pair() as channel:
            return [(await call_aio(channel, m, b"ok"))[0] for m in METHODS]

    with capture(handle_signals=False, faults_enabled=True):
        faults.configure(
            FaultRule(kind="delay", percentage=100, delay=0.001),
            FaultRule(kind="abort", percentage=100, grpc_code=8),
        )
        codes = asyncio.run(main())
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * len(METHODS)
