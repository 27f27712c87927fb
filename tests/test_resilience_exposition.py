"""The breaker's, the fault injector's and the rate-limited sampler's series pass a real
``promtool check metrics`` (Debian's prometheus package) in the Prometheus text format
(promtool does not read OpenMetrics exemplars)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

import unified_obs as obs
from unified_obs import metrics, resilience
from unified_obs.resilience import CircuitBreaker, CircuitOpenError, faults
from unified_obs.resilience.faults import FaultRule, InjectedFault
from unified_obs.testing import capture

PROMTOOL = shutil.which("promtool")


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    resilience.reset()
    faults.reset()
    yield
    resilience.reset()
    faults.reset()


def test_new_series_pass_promtool() -> None:
    """After a breaker opened, faults were injected and roots were sampled, the exposition
    holds every new family and ``promtool check metrics`` finds nothing to complain about."""
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    with capture(
        traces_sampler="parentbased_ratelimited", traces_sampler_arg=5, faults_enabled=True
    ):
        faults.configure(FaultRule(kind="error", percentage=100, targets=("dep",)))
        cb = CircuitBreaker("dep")

        @cb
        @faults.point("dep")
        def call() -> None:
            """Always faulted."""

        for _ in range(120):
            with obs.span("root"), pytest.raises((InjectedFault, CircuitOpenError)):
                call()
        _, _, body = metrics.render()
    text = body.decode()
    for family in (
        "unified_obs_circuit_breaker_state",
        "unified_obs_circuit_breaker_transitions_total",
        "unified_obs_circuit_breaker_call_duration_seconds_bucket",
        "unified_obs_circuit_breaker_not_permitted_calls_total",
        "unified_obs_faults_injected_total",
        "unified_obs_trace_sampling_decisions_total",
        "unified_obs_trace_sampling_probability",
        "unified_obs_trace_sampling_limit",
    ):
        assert family in text, family
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
