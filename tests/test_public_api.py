"""The public surface: ``__all__`` is sorted, complete and every name in it resolves."""

from __future__ import annotations
import __future__

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

import unified_obs

# Public modules whose ``__all__`` is part of the contract (docs/reference/api.md).
_PUBLIC_MODULES = ("unified_obs", "unified_obs.testing", "unified_obs.config", "unified_obs.errors")


def _public_names(module: ModuleType) -> set[str]:
    """Names a user can reach with ``from module import name``: no modules, no privates,
    no ``from __future__`` features."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and not isinstance(value, __future__._Feature)
    }


@pytest.mark.parametrize("name", _PUBLIC_MODULES)
def test_all_is_sorted_and_unique(name: str) -> None:
    """``__all__`` is sorted and has no duplicates."""
    exported = list(importlib.import_module(name).__all__)
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))


@pytest.mark.parametrize("name", _PUBLIC_MODULES)
def test_every_name_in_all_resolves(name: str) -> None:
    """Every name listed in ``__all__`` exists on the module."""
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_package_all_is_complete() -> None:
    """Every public name the package re-exports is listed in ``__all__``."""
    unlisted = sorted(_public_names(unified_obs) - set(unified_obs.__all__))
    assert unlisted == []


def test_contract_names_are_exported() -> None:
    """The documented contract is reachable from the top-level package."""
    for name in (
        "setup",
        "shutdown",
        "get_logger",
        "bind",
        "unbind",
        "bound",
        "wrap_context",
        "current_trace_ids",
        "ConfigError",
        "Settings",
        "Telemetry",
        "ShutdownResult",
    ):
        assert name in unified_obs.__all__, name


def test_config_error_is_a_value_error() -> None:
    """Callers can catch configuration mistakes as ValueError."""
    assert issubclass(unified_obs.ConfigError, ValueError)
    assert issubclass(unified_obs.ConfigError, unified_obs.UnifiedObsError)


# Every public import path and what it exports, as it stood before the package was regrouped
# by concern: a move that drops or renames a name fails here.
PUBLIC_SURFACE: dict[str, tuple[str, ...]] = {
    "unified_obs": (
        "CheckResult", "ConfigError", "HealthRegistry", "Settings", "ShutdownResult",
        "Telemetry", "UnifiedObsError", "bind", "bound", "bound_fields", "counted", "counter",
        "current_trace_ids", "gauge", "get_logger", "histogram", "setup", "shutdown", "span",
        "timed", "traced", "unbind", "up_down_counter", "wrap_context",
    ),
    "unified_obs.asgi": (
        "ASGIApp", "HttpOptions", "Message", "ObservabilityMiddleware", "Receive", "Scope", "Send",
    ),
    "unified_obs.wsgi": (
        "HttpOptions", "ObservabilityMiddleware", "StartResponse", "WSGIApp", "WSGIEnvironment",
    ),
    "unified_obs.django": ("RouteMiddleware", "route_of"),
    "unified_obs.grpc": (
        "add_health_servicer", "aio_client_interceptor", "aio_server_interceptor",
        "client_interceptor", "register_server", "server_interceptor",
    ),
    "unified_obs.testing": ("Captured", "capture", "reset"),
    "unified_obs.processors": (
        "AddFields", "ConsoleRenderer", "Enrich", "JSONRenderer", "RedactFields",
        "add_trace_context", "format_exceptions",
    ),
    "unified_obs.config": ("ENV_VARS", "Entry", "OtlpTarget", "Settings", "effective", "mask_url"),
    "unified_obs.errors": ("ConfigError", "UnifiedObsError"),
    "unified_obs.context": (
        "bind", "bound", "bound_fields", "clear", "current_trace_ids", "reset", "run_in_context",
        "unbind", "wrap_context",
    ),
    "unified_obs.health": (
        "CheckKind", "CheckResult", "HealthRegistry", "HealthReport", "Status",
        "default_registry", "reset",
    ),
    "unified_obs.lifecycle": (
        "Inflight", "Outcome", "ShutdownManager", "ShutdownResult", "draining_since",
        "graceful_sequence", "in_signal_handler", "inflight", "install_signal_handlers",
        "reinstall_signal_handlers",
        "reset", "run_parallel", "run_shutdown_sequence", "set_shutdown_sequence",
        "uninstall_signal_handlers",
    ),
    "unified_obs.metrics": (
        "Counter", "GAUGE_MODES", "Gauge", "Histogram", "MetricsPipeline",
        "SEMCONV_DURATION_BUCKETS", "UpDownCounter", "configure", "count_export", "counter",
        "gauge", "histogram", "instruments", "make_asgi_app", "make_wsgi_app", "render", "reset",
        "up_down_counter", "value", "watch_event_loop",
    ),
    "unified_obs.logs": (
        "LogPipeline", "close", "configure", "get_logger", "live_pipeline", "reset",
        "reset_otel_global",
    ),
    "unified_obs.tracing": (
        "ClosableSampler", "LeanBatchSpanProcessor", "build_sampler", "build_tracer_provider",
        "fast_paths", "keeping", "keeps_dropped",
    ),
    "unified_obs.admin": ("AdminServer", "Answer", "close_all", "serve", "serve_routes"),
    "unified_obs.debug": ("MAX_BODY", "PATHS", "check_host", "routes", "telemetry"),
    "unified_obs.endpoints": (
        "CONTENT_TYPE", "PROBE_PATHS", "Response", "probe", "probe_async", "render",
    ),
    "unified_obs.redact": ("QUERY_LIMIT", "REDACTED", "Redactor", "scrub_json", "scrub_urls"),
    "unified_obs.resource": ("build_resource", "instance_id"),
    "unified_obs.pytest_plugin": ("obs_capture", "obs_reset"),
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(PUBLIC_SURFACE))
def test_public_import_path_keeps_its_names(path: str) -> None:
    """Each public import path still imports, exports exactly its names, and each resolves."""
    module = importlib.import_module(path)
    assert tuple(sorted(module.__all__)) == tuple(sorted(PUBLIC_SURFACE[path]))
    assert [name for name in module.__all__ if getattr(module, name, None) is None] == []


def test_import_is_light() -> None:
    """``import unified_obs`` loads none of the heavy libraries behind it: each public name
    loads its module on first use (checked in a fresh interpreter)."""
    code = (
        "import sys, unified_obs\n"
        "heavy = ('opentelemetry.sdk', 'prometheus_client', 'structlog', 'requests', 'wrapt')\n"
        "print([m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_names_load_on_first_use_and_stay() -> None:
    """A public name resolves on first access, is then a plain module attribute, and an
    unknown name raises AttributeError (so ``from unified_obs import missing`` fails)."""
    assert unified_obs.traced is unified_obs.decorators.traced
    assert "traced" in vars(unified_obs)
    assert "traced" in dir(unified_obs)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = unified_obs.no_such_name
