"""unified_obs: production observability for Python services with one call.

import unified_obs as obs

tel = obs.setup(service_name="checkout", service_version="1.4.2")
log = obs.get_logger(__name__)
log.info("order.created", order_id=42)
"""

from __future__ import annotations

from ._setup import Telemetry, setup, shutdown
from .config import Settings
from .context import bind, bound, bound_fields, current_trace_ids, unbind, wrap_context
from .decorators import counted, span, timed, traced
from .errors import ConfigError, UnifiedObsError
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
