"""``examples/breaker_faults.py`` runs on a fresh interpreter: injected faults trip the
breaker and its metrics say so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_EXAMPLE = _ROOT / "examples" / "breaker_faults.py"


def test_injected_faults_trip_the_breaker_and_the_metrics_show_it() -> None:
    """The example exits 0; some checkouts fail by injection, then the breaker opens and
    the rest get the fallback (503); /metrics shows the open state, the transition, the
    rejected calls and the injected faults."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    done = subprocess.run(
        [sys.executable, str(_EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=_ROOT,
        env=environ,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    statuses = re.search(r"checkout statuses: ([\d ]+)", done.stderr)
    assert statuses is not None, done.stderr[-2000:]
    codes = statuses.group(1).split()
    assert "502" in codes[:10]  # injected failures reached the caller
    assert codes[-1] == "503"  # the breaker is open: the fallback answers
    assert "200" in codes  # 60 %, not 100 %: some calls went through

    def series(name: str, **labels: str) -> float:
        for line in done.stderr.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} {labels} missing from:\n{done.stderr[-3000:]}")

    assert series("unified_obs_circuit_breaker_state", state="open") == 1.0
    assert series("unified_obs_circuit_breaker_transitions_total", to_state="open") == 1.0
    assert series("unified_obs_circuit_breaker_not_permitted_calls_total") == codes.count("503")
    assert series("unified_obs_faults_injected_total", target="payments") == codes.count("502")
