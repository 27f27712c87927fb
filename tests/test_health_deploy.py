"""examples/deploy/deployment.yaml stays in step with the library's defaults."""

from __future__ import annotations

import re
from pathlib import Path

from unified_obs import Settings, endpoints, health

DEPLOYMENT = (Path(__file__).parent.parent / "examples" / "deploy" / "deployment.yaml").read_text()


def _number(pattern: str) -> float:
    found = re.search(pattern, DEPLOYMENT)
    assert found is not None, pattern
    return float(found.group(1))


def _env(name: str) -> float:
    return _number(rf"name: {name}, value: \"?([0-9.]+)")


def test_grace_period_and_budget_match_defaults() -> None:
    """Grace period, drain and flush budgets are the defaults, and preStop + budget fits."""
    defaults = Settings()
    grace = _number(r"terminationGracePeriodSeconds: ([0-9]+)")
    assert grace == defaults.grace_period == _env("UNIFIED_OBS_GRACE_PERIOD")
    assert _env("UNIFIED_OBS_DRAIN_TIMEOUT") == defaults.drain_timeout
    assert _env("UNIFIED_OBS_SHUTDOWN_TIMEOUT") == defaults.shutdown_timeout
    assert _env("UNIFIED_OBS_DRAIN_DELAY") == defaults.drain_delay
    assert _number(r"--timeout-graceful-shutdown=([0-9]+)") == defaults.drain_timeout
    pre_stop = _number(r"sleep: \{seconds: ([0-9]+)\}")
    budget = pre_stop + defaults.drain_delay + defaults.drain_timeout + defaults.shutdown_timeout
    assert budget <= grace - 1


def test_probes_use_library_paths_and_timeouts() -> None:
    """Each probe hits its path, and checks time out before the probe does."""
    for kind, path in (("startup", "/startupz"), ("readiness", "/readyz"), ("liveness", "/livez")):
        assert endpoints.PROBE_PATHS[path] == kind
        block = DEPLOYMENT.split(f"{kind}Probe:")[1]
        assert f"path: {path}" in block.split("Probe:")[0]
    timeouts = [float(t) for t in re.findall(r"timeoutSeconds: ([0-9]+)", DEPLOYMENT)]
    assert len(timeouts) == 3
    assert all(t > health.DEFAULT_TIMEOUT for t in timeouts)
