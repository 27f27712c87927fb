"""The Kubernetes pod snippet ``doctor --k8s`` prints: probes and the grace period, derived
from the shutdown settings.

- ``terminationGracePeriodSeconds`` is ``grace_period`` rounded up: the shutdown sequence
  (drain_delay + drain_timeout + shutdown_timeout) was validated to fit inside it.
- Readiness is probed often enough that the 503 it answers while draining is seen within
  ``drain_delay`` (one failure is enough: ``failureThreshold: 1``).
- Liveness never checks dependencies and tolerates three misses; startup allows
  ``startup_budget`` seconds for warm-ups.
"""

from __future__ import annotations

import json
import math

from ..config import Settings

__all__ = ["pod_snippet"]


def pod_snippet(settings: Settings, port: int, startup_budget: int = 60) -> str:
    """A YAML fragment of a pod spec: the container's probes and the grace period."""
    readiness_period = max(1, min(5, math.floor(settings.drain_delay or 5)))
    startup_period = 2
    name = json.dumps(settings.service_name or "app")  # a JSON string is a YAML scalar
    budget = settings.drain_delay + settings.drain_timeout + settings.shutdown_timeout
    lines = [
        "# unified-obs doctor --k8s: probes and grace period derived from the settings",
        f"# shutdown: drain_delay {settings.drain_delay:g}s + drain_timeout "
        f"{settings.drain_timeout:g}s + shutdown_timeout {settings.shutdown_timeout:g}s "
        f"= {budget:g}s",
        "# the kubelet probes the pod's IP: serve these paths from the application's port"
        ' (the middleware does), or from tel.serve_admin(port, host="0.0.0.0"), whose'
        " default host 127.0.0.1 it cannot reach",
        "spec:",
        f"  terminationGracePeriodSeconds: {math.ceil(settings.grace_period)}",
        "  containers:",
        f"    - name: {name}",
        *_probe("livenessProbe", "/livez", port, period=10, failures=3),
        *_probe("readinessProbe", "/readyz", port, period=readiness_period, failures=1),
        *_probe(
            "startupProbe",
            "/startupz",
            port,
            period=startup_period,
            failures=max(1, math.ceil(startup_budget / startup_period)),
        ),
    ]
    if not settings.drain_delay:
        lines.append(
            "# drain_delay is 0: requests routed before the endpoint update reaches every "
            "load balancer may fail; UNIFIED_OBS_DRAIN_DELAY=5 is a common choice"
        )
    return "\n".join(lines) + "\n"


def _probe(kind: str, path: str, port: int, *, period: int, failures: int) -> list[str]:
    return [
        f"      {kind}:",
        f"        httpGet: {{path: {path}, port: {port}}}",
        f"        periodSeconds: {period}",
        f"        timeoutSeconds: {min(period, 2)}",
        f"        failureThreshold: {failures}",
    ]
