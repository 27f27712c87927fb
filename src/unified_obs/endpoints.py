"""Pure rendering of health reports into HTTP responses, shared by every adapter.

``render(report)`` -> ``(status, headers, body)``: 200 for "pass"/"warn", 503 for "fail";
an ``application/health+json`` body of a few bytes (``{"status":"pass"}``).  Per-check
details only when asked for (``details=True``, or ``details=None``: the process's
policy, which ``setup(health_details=...)`` sets through :func:`configure`; off by
default); even then only check names, statuses and the short details the checks
themselves returned -- never versions, hosts or exception text.  ``head=True`` keeps the
headers and drops the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from .health import CheckKind, HealthRegistry, HealthReport

__all__ = ["CONTENT_TYPE", "PROBE_PATHS", "Response", "probe", "probe_async", "render"]

CONTENT_TYPE: Final = "application/health+json"
PROBE_PATHS: Final[Mapping[str, CheckKind]] = {
    "/livez": "liveness",
    "/readyz": "readiness",
    "/startupz": "startup",
    "/healthz": "liveness",
}
"""Probe path -> kind.  ``/healthz`` is the conventional alias of liveness."""

Response = tuple[int, list[tuple[str, str]], bytes]

_policy: dict[str, bool] = {"details": False}


def configure(*, details: bool = False) -> None:
    """Set whether probes answered with ``details=None`` list their checks (``setup()``
    pushes ``health_details`` here; ``testing.reset()`` puts back the default, off)."""
    _policy["details"] = details


def details_shown(details: bool | None = None) -> bool:
    """``details`` if given, else the process's policy (see :func:`configure`)."""
    return _policy["details"] if details is None else details


def render(report: HealthReport, *, details: bool | None = None, head: bool = False) -> Response:
    """The HTTP response for ``report`` (pure but for reading the details policy when
    ``details`` is ``None``; never raises for a well-formed report)."""
    payload: dict[str, object] = {"status": report.status}
    if details_shown(details):
        if report.reason is not None:
            payload["reason"] = report.reason
        payload["checks"] = {
            name: _check_body(result.status, result.detail)
            for name, result in sorted(report.checks.items())
        }
    body = orjson.dumps(payload)
    headers = [
        ("content-type", CONTENT_TYPE),
        ("cache-control", "no-store"),
        ("content-length", str(len(body))),
    ]
    return (200 if report.ok else 503), headers, (b"" if head else body)


def _check_body(status: str, detail: str | None) -> dict[str, str]:
    return {"status": status} if detail is None else {"status": status, "detail": detail[:200]}


def probe(
    registry: HealthRegistry, path: str, *, details: bool | None = None, head: bool = False
) -> Response | None:
    """Answer ``path`` if it is a probe path (from a thread: WSGI, admin server), else None."""
    kind = PROBE_PATHS.get(path)
    if kind is None:
        return None
    return render(registry.check_sync(kind), details=details, head=head)


async def probe_async(
    registry: HealthRegistry, path: str, *, details: bool | None = None, head: bool = False
) -> Response | None:
    """Answer ``path`` if it is a probe path, on the running loop (ASGI), else None."""
    kind = PROBE_PATHS.get(path)
    if kind is None:
        return None
    return render(await registry.check_async(kind), details=details, head=head)
