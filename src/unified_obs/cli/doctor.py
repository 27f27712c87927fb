"""``unified-obs doctor``: what unified_obs would do in this environment, and what is broken.

It resolves the settings exactly as ``setup()`` would from this environment, then shows
the effective configuration with the source of every value (secrets masked), reaches
each OTLP endpoint with a short timeout, and checks propagators, sampler, multi-worker
metrics, the fast paths and known pitfalls.  Exit status 1 when a check fails (an
endpoint unreachable, an invalid environment value, a grace period too short), else 0;
``--strict`` fails on warnings too.  ``--json`` prints one JSON document; ``--k8s`` the
probe and grace-period snippet for a pod spec instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from ..config import Settings, effective
from ..tracing import fast_paths
from ._checks import Check, pitfalls, setup_checks, worst
from ._k8s import pod_snippet
from ._reach import reachability

__all__ = ["register", "run"]

_MARK = {"ok": "ok  ", "info": "info", "warn": "WARN", "fail": "FAIL"}


def register(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``doctor`` and its options (``add_parser``: see ``cli.AddParser``; not imported,
    as ``cli`` imports this module)."""
    parser = add_parser(
        "doctor",
        help="show the effective configuration and check exporters, sampling and pitfalls",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--k8s", action="store_true", help="print the pod's probes and grace period (YAML)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="the port the probes answer on (--k8s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        help="seconds to wait for each endpoint (default 3)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Diagnose, print, and return the exit status."""
    environ = dict(os.environ)
    settings, config_checks = _settings(environ)
    if args.k8s:
        sys.stdout.write(pod_snippet(settings, args.port))
        return 1 if worst(config_checks) == "fail" else 0
    checks = [
        *config_checks,
        *setup_checks(settings, fast_paths(settings)),
        *reachability(settings, args.timeout, environ),
        *pitfalls(settings, environ),
    ]
    status = worst(checks)
    if args.json:
        sys.stdout.write(json.dumps(_document(settings, environ, checks, status), indent=2) + "\n")
    else:
        sys.stdout.write(_text(settings, environ, checks, status))
    failing = ("fail", "warn") if args.strict else ("fail",)
    return 1 if status in failing else 0


def _settings(environ: dict[str, str]) -> tuple[Settings, list[Check]]:
    """Settings as ``setup()`` would resolve them; each warning about the environment
    (a value that could not be used) becomes a failed check."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = Settings.from_env(environ)
    checks = [
        Check("environment", "fail", str(warning.message).removeprefix("unified_obs: "))
        for warning in caught
    ]
    return settings, checks


def _document(
    settings: Settings, environ: dict[str, str], checks: list[Check], status: str
) -> dict[str, Any]:
    return {
        "status": status,
        "configuration": [entry.as_dict() for entry in effective(settings, environ)],
        "checks": [check.as_dict() for check in checks],
    }


def _text(settings: Settings, environ: dict[str, str], checks: list[Check], status: str) -> str:
    lines = ["Configuration (value  source  environment variable; secrets masked):"]
    for entry in effective(settings, environ):
        value = json.dumps(entry.value) if not isinstance(entry.value, str) else entry.value
        lines.append(f"  {entry.name} = {value}  [{entry.source}]  {entry.env or ''}".rstrip())
    lines.append("")
    lines.append("Checks:")
    for check in checks:
        lines.append(f"  {_MARK[check.status]}  {check.name}: {check.summary}")
        if check.hint:
            lines.append(f"        -> {check.hint}")
    lines.append("")
    lines.append(f"Result: {status}")
    return "\n".join(lines) + "\n"
