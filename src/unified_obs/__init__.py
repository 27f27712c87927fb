"""unified_obs: production observability for Python services with one call.

import unified_obs as obs

tel = obs.setup(service_name="checkout", service_version="1.4.2")
log = obs.get_logger(__name__)
log.info("order.created", order_id=42)

``import unified_obs`` is light: each public name loads its module (and the libraries
behind it: the OpenTelemetry SDK, prometheus_client, structlog) the first time it is used.
"""

from __future__ import annotations

import types
import typing

from .errors import ConfigError, UnifiedObsError

if typing.TYPE_CHECKING:
    from ._setup import Telemetry, setup, shutdown
    from .config import Settings
    from .context import bind, bound, bound_fields, current_trace_ids, unbind, wrap_context
    from .decorators import counted, span, timed, traced
    from .health import CheckResult, HealthRegistry
    from .lifecycle import ShutdownResult
    from .logs import get_logger
    from .metrics import counter, gauge, histogram, up_down_counter

__all__ = [
    "CheckResult",
    "ConfigError",
    "HealthRegistry",
    "Settings",
    "ShutdownResult",
    "Telemetry",
    "UnifiedObsError",
    "bind",
    "bound",
    "bound_fields",
    "counted",
    "counter",
    "current_trace_ids",
    "gauge",
    "get_logger",
    "histogram",
    "setup",
    "shutdown",
    "span",
    "timed",
    "traced",
    "unbind",
    "up_down_counter",
    "wrap_context",
]


def __getattr__(name: str) -> typing.Any:
    """A public name, loaded from its module on first use and kept here from then on."""
    value = getattr(_home_of(name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _home_of(name: str) -> types.ModuleType:
    """The module that defines public ``name`` (imported here, so the import graph sees it)."""
    if name in ("Telemetry", "setup", "shutdown"):
        from . import _setup

        return _setup
    if name in ("bind", "bound", "bound_fields", "current_trace_ids", "unbind", "wrap_context"):
        from . import context

        return context
    if name in ("counted", "span", "timed", "traced"):
        from . import decorators

        return decorators
    if name in ("counter", "gauge", "histogram", "up_down_counter"):
        from . import metrics

        return metrics
    if name == "get_logger":
        from . import logs

        return logs
    if name in ("CheckResult", "HealthRegistry"):
        from . import health

        return health
    if name == "ShutdownResult":
        from . import lifecycle

        return lifecycle
    if name == "Settings":
        from . import config

        return config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
