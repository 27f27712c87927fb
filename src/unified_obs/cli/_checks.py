"""What ``doctor`` checks besides reachability: pure functions of the settings, the
environment and what is installed, each returning :class:`Check` results.

A check ``fail`` s when telemetry cannot work as configured (``doctor`` then exits 1),
``warn`` s for a known pitfall, and says ``ok`` or ``info`` otherwise.  No text built here
contains a header value or a URL's credentials: endpoints go through ``mask_url``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Literal

from ..config import Settings

__all__ = ["Check", "Status", "pitfalls", "setup_checks"]

Status = Literal["ok", "info", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: what was checked, how it went, what was seen, what to do about it."""

    name: str
    status: Status
    summary: str
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dictionary."""
        return asdict(self)


def setup_checks(settings: Settings, fast_paths: Mapping[str, bool]) -> list[Check]:
    """Exporters, propagators, sampler, multi-worker metrics and the fast paths."""
    return [
        _exporters(settings),
        _propagators(settings.propagators),
        _sampler(settings.traces_sampler, settings.traces_sampler_arg),
        _multiprocess(settings.metrics_multiprocess_dir, os.environ),
        _fast_paths(fast_paths),
    ]


def _exporters(settings: Settings) -> Check:
    chosen = {signal: settings.exporter(signal) for signal in ("traces", "metrics", "logs")}
    summary = ", ".join(f"{signal}={name}" for signal, name in chosen.items())
    if settings.sdk_disabled:
        return Check("exporters", "warn", summary, "OTEL_SDK_DISABLED=true: no spans are made")
    if set(chosen.values()) == {"none"}:
        return Check(
            "exporters",
            "warn",
            summary,
            "nothing leaves the process but /metrics and stdout logs; "
            "set OTEL_EXPORTER_OTLP_ENDPOINT to push over OTLP",
        )
    return Check("exporters", "ok", summary)


def _propagators(names: tuple[str, ...]) -> Check:
    summary = ", ".join(names) or "(none)"
    if "tracecontext" not in names:
        return Check(
            "propagators",
            "warn",
            summary,
            "without tracecontext, traces do not continue across services (W3C traceparent)",
        )
    return Check("propagators", "ok", summary)


def _sampler(name: str, ratio: float) -> Check:
    uses_ratio = name.endswith("traceidratio")
    summary = f"{name} (ratio {ratio:g})" if uses_ratio else name
    if name in ("always_off", "parentbased_always_off") or (uses_ratio and ratio == 0):
        return Check("sampler", "warn", summary, "no root span is ever sampled")
    if not name.startswith("parentbased_"):
        return Check(
            "sampler",
            "info",
            summary,
            "ignores the caller's sampling decision: traces across services may be partial",
        )
    return Check("sampler", "ok", summary)


def _multiprocess(directory: str | None, environ: Mapping[str, str]) -> Check:
    workers = _declared_workers(environ)
    if directory is None:
        if workers > 1:
            return Check(
                "multiprocess",
                "info",
                f"{workers} workers declared, PROMETHEUS_MULTIPROC_DIR unset",
                "gunicorn, uvicorn --workers and hypercorn workers share a private directory "
                "by themselves; under another pre-fork server set PROMETHEUS_MULTIPROC_DIR",
            )
        return Check("multiprocess", "ok", "single process (PROMETHEUS_MULTIPROC_DIR unset)")
    if not os.path.isdir(directory):
        return Check(
            "multiprocess", "fail", "PROMETHEUS_MULTIPROC_DIR is not a directory", "create it"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        return Check("multiprocess", "fail", "PROMETHEUS_MULTIPROC_DIR is not writable")
    return Check("multiprocess", "ok", f"PROMETHEUS_MULTIPROC_DIR set ({workers or '?'} workers)")


def _declared_workers(environ: Mapping[str, str]) -> int:
    """``WEB_CONCURRENCY`` (gunicorn and uvicorn read it), else 0 when unknown."""
    try:
        return int(environ.get("WEB_CONCURRENCY", "0"))
    except ValueError:
        return 0


def _fast_paths(paths: Mapping[str, bool]) -> Check:
    summary = ", ".join(f"{name}={'on' if on else 'off'}" for name, on in paths.items())
    if not paths.get("lean_spans", True):
        return Check(
            "fast_paths",
            "info",
            summary,
            "the installed OpenTelemetry SDK is not one the lean span path knows: "
            "spans take the SDK's own (slower) path",
        )
    return Check("fast_paths", "ok", summary)


def pitfalls(
    settings: Settings,
    environ: Mapping[str, str],
    installed: Callable[[str], bool] | None = None,
) -> list[Check]:
    """Known pitfalls: no service name, ``PYTHONUNBUFFERED``, FastAPI's own telemetry
    next to ours, a grace period too short for drain + shutdown."""
    has = installed or _installed
    found = [
        _service_name(settings),
        _unbuffered(environ),
        _fastapi_instrumentation(has),
        _grace_period(settings),
    ]
    return [check for check in found if check is not None]


def _service_name(settings: Settings) -> Check:
    if settings.service_name or settings.resource_attributes.get("service.name"):
        return Check("service_name", "ok", str(settings.service_name or "from resource"))
    return Check(
        "service_name",
        "warn",
        "not set: telemetry is reported as unknown_service",
        "set OTEL_SERVICE_NAME or setup(service_name=...)",
    )


def _unbuffered(environ: Mapping[str, str]) -> Check | None:
    if not environ.get("PYTHONUNBUFFERED", "").strip():
        return None
    return Check(
        "python_unbuffered",
        "info",
        "PYTHONUNBUFFERED is set",
        "unified_obs writes each log line whole already; unbuffered stdout costs a system "
        "call per write of every other library",
    )


def _fastapi_instrumentation(installed: Callable[[str], bool]) -> Check | None:
    duplicates = [
        name
        for name in ("opentelemetry-instrumentation-fastapi", "opentelemetry-instrumentation-asgi")
        if installed(name)
    ]
    if not duplicates or not installed("fastapi"):
        return None
    return Check(
        "fastapi_telemetry",
        "info",
        "installed: " + ", ".join(duplicates),
        "use one of FastAPIInstrumentor/OpenTelemetryMiddleware or unified_obs's middleware "
        "per app, not both: each makes its own server span and duration metric",
    )


def _grace_period(settings: Settings) -> Check:
    budget = settings.drain_delay + settings.drain_timeout + settings.shutdown_timeout
    summary = (
        f"drain_delay {settings.drain_delay:g}s + drain_timeout {settings.drain_timeout:g}s + "
        f"shutdown_timeout {settings.shutdown_timeout:g}s = {budget:g}s, "
        f"grace_period {settings.grace_period:g}s"
    )
    if budget > settings.grace_period - 1.0:
        return Check(
            "grace_period",
            "fail",
            summary,
            "the orchestrator kills the process before shutdown ends: raise grace_period "
            "(and terminationGracePeriodSeconds) or lower the others",
        )
    return Check("grace_period", "ok", summary)


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def worst(checks: Iterable[Check]) -> Status:
    """The most serious status among ``checks``."""
    order: tuple[Status, ...] = ("ok", "info", "warn", "fail")
    return max((check.status for check in checks), key=order.index, default="ok")
