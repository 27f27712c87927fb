"""Configuration as data: the frozen ``Settings`` and the environment variables behind it.

Precedence is explicit argument > environment > default.  ``Settings.from_env``
is pure: it takes the environment as a mapping, so tests pass a dict.  A bad
value given in code raises ``ConfigError``; a bad environment value warns once
and falls back to the default, as the OpenTelemetry specification asks.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .. import redact
from ..errors import ConfigError
from ..limits import AttributeLimits, Limits
from . import _parsing as p
from ._effective import MASK, Entry, describe, mask_url

__all__ = ["ENV_VARS", "Entry", "OtlpTarget", "Settings", "effective", "mask_url"]

Signal = Literal["traces", "metrics", "logs"]
_SIGNALS: Final = ("traces", "metrics", "logs")
_DEFAULT_ENDPOINTS: Final = {
    "http/protobuf": "http://localhost:4318",
    "grpc": "http://localhost:4317",
}


_RATE_LIMITED: Final = "parentbased_ratelimited"
_MAX_ROOTS_PER_SECOND: Final = 1_000_000
_DEFAULT_ROOTS_PER_SECOND: Final = 100.0


@dataclass(frozen=True, slots=True)
class _Spec:
    env: str | None
    kind: p.Kind
    secret: bool = False


# name -> (environment variable, kind).  One row per Settings field; a test keeps
# this table, the Settings fields and the table in docs/configuration.md in step.
_SPECS: Final[dict[str, _Spec]] = {
    "service_name": _Spec("OTEL_SERVICE_NAME", p.text()),
    "service_version": _Spec("UNIFIED_OBS_SERVICE_VERSION", p.text()),
    "environment": _Spec("UNIFIED_OBS_ENVIRONMENT", p.text()),
    "resource_attributes": _Spec("OTEL_RESOURCE_ATTRIBUTES", p.mapping()),
    "sdk_disabled": _Spec("OTEL_SDK_DISABLED", p.flag()),
    "traces_exporter": _Spec("OTEL_TRACES_EXPORTER", p.choice("otlp", "console", "none")),
    "metrics_exporter": _Spec("OTEL_METRICS_EXPORTER", p.choice("otlp", "console", "none")),
    "logs_exporter": _Spec("OTEL_LOGS_EXPORTER", p.choice("otlp", "console", "none")),
    "traces_sampler": _Spec(
        "OTEL_TRACES_SAMPLER",
        p.choice(
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_ratelimited",
        ),
    ),
    "traces_sampler_arg": _Spec(
        "OTEL_TRACES_SAMPLER_ARG",
        p.number(0, _MAX_ROOTS_PER_SECOND, unit="ratio (roots per second when rate-limited)"),
    ),
    "traces_keep_errors": _Spec("UNIFIED_OBS_TRACES_KEEP_ERRORS", p.flag()),
    "traces_keep_slower_than": _Spec("UNIFIED_OBS_TRACES_KEEP_SLOWER_THAN", p.number(0.001, 3600)),
    "propagators": _Spec("OTEL_PROPAGATORS", p.names("tracecontext", "baggage", "none")),
    "otlp_endpoint": _Spec("OTEL_EXPORTER_OTLP_ENDPOINT", p.url()),
    "otlp_protocol": _Spec("OTEL_EXPORTER_OTLP_PROTOCOL", p.choice("http/protobuf", "grpc")),
    "otlp_headers": _Spec("OTEL_EXPORTER_OTLP_HEADERS", p.mapping(), secret=True),
    "otlp_timeout": _Spec("OTEL_EXPORTER_OTLP_TIMEOUT", p.number(0.001, 600, env_scale=1e-3)),
    **{
        f"otlp_{signal}_{part}": _Spec(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_{part.upper()}", kind, secret=part == "headers"
        )
        for signal in _SIGNALS
        for part, kind in (
            ("endpoint", p.url()),
            ("protocol", p.choice("http/protobuf", "grpc")),
            ("headers", p.mapping()),
            ("timeout", p.number(0.001, 600, env_scale=1e-3)),
        )
    },
    "bsp_schedule_delay": _Spec("OTEL_BSP_SCHEDULE_DELAY", p.number(0.001, 3600, env_scale=1e-3)),
    "bsp_export_timeout": _Spec("OTEL_BSP_EXPORT_TIMEOUT", p.number(0.001, 600, env_scale=1e-3)),
    "bsp_max_queue_size": _Spec("OTEL_BSP_MAX_QUEUE_SIZE", p.integer(1, 1_000_000)),
    "bsp_max_export_batch_size": _Spec("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", p.integer(1, 1_000_000)),
    "attribute_value_length_limit": _Spec(
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", p.integer(1, 10_000_000)
    ),
    "attribute_count_limit": _Spec("OTEL_ATTRIBUTE_COUNT_LIMIT", p.integer(1, 100_000)),
    "span_attribute_value_length_limit": _Spec(
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", p.integer(1, 10_000_000)
    ),
    "span_attribute_count_limit": _Spec("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", p.integer(1, 100_000)),
    "logrecord_attribute_value_length_limit": _Spec(
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", p.integer(1, 10_000_000)
    ),
    "logrecord_attribute_count_limit": _Spec(
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", p.integer(1, 100_000)
    ),
    "metric_export_interval": _Spec(
        "OTEL_METRIC_EXPORT_INTERVAL", p.number(0.1, 86_400, env_scale=1e-3)
    ),
    "metrics_namespace": _Spec("UNIFIED_OBS_METRICS_NAMESPACE", p.text()),
    "metrics_cardinality_limit": _Spec(
        "UNIFIED_OBS_METRICS_CARDINALITY_LIMIT", p.integer(1, 1_000_000)
    ),
    "metrics_multiprocess_dir": _Spec("PROMETHEUS_MULTIPROC_DIR", p.text()),
    "prometheus_without_scope_info": _Spec("UNIFIED_OBS_PROMETHEUS_WITHOUT_SCOPE_INFO", p.flag()),
    "prometheus_without_target_info": _Spec("UNIFIED_OBS_PROMETHEUS_WITHOUT_TARGET_INFO", p.flag()),
    "log_level": _Spec(
        "UNIFIED_OBS_LOG_LEVEL", p.choice("debug", "info", "warning", "error", "critical")
    ),
    "log_format": _Spec("UNIFIED_OBS_LOG_FORMAT", p.choice("auto", "json", "console")),
    "log_stdlib": _Spec("UNIFIED_OBS_LOG_STDLIB", p.flag()),
    "redact_keys": _Spec("UNIFIED_OBS_REDACT_KEYS", p.names()),
    "shutdown_timeout": _Spec("UNIFIED_OBS_SHUTDOWN_TIMEOUT", p.number(0.01, 600)),
    "drain_delay": _Spec("UNIFIED_OBS_DRAIN_DELAY", p.number(0, 600)),
    "drain_timeout": _Spec("UNIFIED_OBS_DRAIN_TIMEOUT", p.number(0, 600)),
    "grace_period": _Spec("UNIFIED_OBS_GRACE_PERIOD", p.number(0.1, 3600)),
    "handle_signals": _Spec("UNIFIED_OBS_HANDLE_SIGNALS", p.flag()),
    "health_details": _Spec("UNIFIED_OBS_HEALTH_DETAILS", p.flag()),
    "faults_enabled": _Spec("UNIFIED_OBS_FAULTS_ENABLED", p.flag()),
    "outbound_http": _Spec("UNIFIED_OBS_OUTBOUND_HTTP", p.flag()),
    "runtime_metrics": _Spec("UNIFIED_OBS_RUNTIME_METRICS", p.flag()),
    "http_known_methods": _Spec(
        "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS",
        p.tokens("a list of HTTP method names (case-sensitive), e.g. GET,POST,PURGE"),
    ),
}

ENV_VARS: Final[dict[str, str]] = {
    spec.env: name for name, spec in _SPECS.items() if spec.env is not None
}
"""Every environment variable unified_obs reads, mapped to its ``Settings`` field."""


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    """Where and how one signal is pushed over OTLP (per-signal values resolved)."""

    endpoint: str
    protocol: str
    headers: Mapping[str, str]
    timeout: float

    def __repr__(self) -> str:
        """The target with its secrets masked: header values, URL user-info and query."""
        return (
            f"OtlpTarget(endpoint={mask_url(self.endpoint)!r}, protocol={self.protocol!r}, "
            f"headers={dict.fromkeys(self.headers, MASK)!r}, timeout={self.timeout!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every knob of unified_obs, resolved and validated.  Build with :meth:`from_env`.

    Durations are seconds in code; the matching ``OTEL_*`` variables are in
    milliseconds, as the OpenTelemetry specification defines them.
    """

    service_name: str | None = None
    service_version: str | None = None
    environment: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sdk_disabled: bool = False
    traces_exporter: str | None = None  # None: "otlp" when an endpoint is set, else "none"
    metrics_exporter: str | None = None
    logs_exporter: str | None = None
    traces_sampler: str = "parentbased_always_on"
    traces_sampler_arg: float = 1.0
    traces_keep_errors: bool = False  # record roots the head sampler drops; keep the failed
    traces_keep_slower_than: float | None = None  # ... and those slower than this (seconds)
    propagators: tuple[str, ...] = ("tracecontext", "baggage")
    otlp_endpoint: str | None = None
    otlp_protocol: str = "http/protobuf"
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    otlp_timeout: float = 10.0
    otlp_traces_endpoint: str | None = None
    otlp_traces_protocol: str | None = None
    otlp_traces_headers: Mapping[str, str] | None = None
    otlp_traces_timeout: float | None = None
    otlp_metrics_endpoint: str | None = None
    otlp_metrics_protocol: str | None = None
    otlp_metrics_headers: Mapping[str, str] | None = None
    otlp_metrics_timeout: float | None = None
    otlp_logs_endpoint: str | None = None
    otlp_logs_protocol: str | None = None
    otlp_logs_headers: Mapping[str, str] | None = None
    otlp_logs_timeout: float | None = None
    bsp_schedule_delay: float = 5.0
    bsp_export_timeout: float = 30.0
    bsp_max_queue_size: int = 2048
    bsp_max_export_batch_size: int = 512
    attribute_value_length_limit: int = 4096
    attribute_count_limit: int = 128
    span_attribute_value_length_limit: int | None = None  # None: attribute_value_length_limit
    span_attribute_count_limit: int | None = None  # None: attribute_count_limit
    logrecord_attribute_value_length_limit: int | None = None
    logrecord_attribute_count_limit: int | None = None
    metric_export_interval: float = 60.0
    metrics_namespace: str | None = None
    metrics_cardinality_limit: int = 2000
    metrics_multiprocess_dir: str | None = None
    prometheus_without_scope_info: bool = False  # no otel_scope_* labels on /metrics
    prometheus_without_target_info: bool = False  # no target_info on /metrics
    log_level: str = "info"
    log_format: str = "auto"
    log_stdlib: bool = True
    redact_keys: tuple[str, ...] = ()
    shutdown_timeout: float = 5.0
    drain_delay: float = 0.0
    drain_timeout: float = 15.0
    grace_period: float = 30.0
    handle_signals: bool = True
    health_details: bool = False
    faults_enabled: bool = False  # arms resilience.faults; off unless set in code or env
    outbound_http: bool = True
    runtime_metrics: bool = True  # process, GC and event-loop metrics (a thread and a GC hook)
    http_known_methods: tuple[str, ...] | None = None  # None: the conventions' list

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Resolve settings: ``overrides`` (validated, may raise) > ``environ`` > defaults.

        ``environ`` defaults to ``os.environ`` read now.  Unknown override names
        and invalid override values raise ``ConfigError``; invalid environment
        values emit one ``RuntimeWarning`` each and use the default.
        """
        if environ is None:
            import os

            environ = os.environ
        values = {name: _resolve(name, spec, environ, overrides) for name, spec in _SPECS.items()}
        unknown = sorted(set(overrides) - set(_SPECS))
        if unknown:
            raise ConfigError(
                unknown[0],
                overrides[unknown[0]],
                "a setting name; known: " + ", ".join(sorted(_SPECS)),
            )
        values = {k: v for k, v in values.items() if v is not _UNSET}
        return _fix_relations(cls(**values), set(overrides), set(values))

    def otlp(self, signal: Signal) -> OtlpTarget:
        """The OTLP endpoint, protocol, headers and timeout for ``signal``."""
        protocol = getattr(self, f"otlp_{signal}_protocol") or self.otlp_protocol
        endpoint = getattr(self, f"otlp_{signal}_endpoint")
        if endpoint is None:
            base = self.otlp_endpoint or _DEFAULT_ENDPOINTS[protocol]
            endpoint = base if protocol == "grpc" else f"{base.rstrip('/')}/v1/{signal}"
        headers = getattr(self, f"otlp_{signal}_headers")
        timeout = getattr(self, f"otlp_{signal}_timeout")
        return OtlpTarget(
            endpoint=endpoint,
            protocol=protocol,
            headers=self.otlp_headers if headers is None else headers,
            timeout=self.otlp_timeout if timeout is None else timeout,
        )

    def exporter(self, signal: Signal) -> str:
        """The exporter in force for ``signal``: explicit, else ``otlp`` if an endpoint is set."""
        chosen: str | None = getattr(self, f"{signal}_exporter")
        if chosen is not None:
            return chosen
        configured = self.otlp_endpoint or getattr(self, f"otlp_{signal}_endpoint")
        return "otlp" if configured else "none"

    def limits(self) -> Limits:
        """The limit policy these settings define: a signal's own limit where one is set,
        else the general ``attribute_*`` one (the OpenTelemetry specification's rule)."""
        length, count = self.attribute_value_length_limit, self.attribute_count_limit
        return Limits(
            spans=AttributeLimits(
                _either(self.span_attribute_value_length_limit, length),
                _either(self.span_attribute_count_limit, count),
            ),
            log_records=AttributeLimits(
                _either(self.logrecord_attribute_value_length_limit, length),
                _either(self.logrecord_attribute_count_limit, count),
            ),
            label_value_length=length,
        )

    def __repr__(self) -> str:
        """Every field, with the secrets masked: OTLP header values, URL user-info and query
        strings, resource attributes under keys the redaction policy calls sensitive."""
        shown = (f"{name}={_masked(spec, getattr(self, name))!r}" for name, spec in _SPECS.items())
        return f"Settings({', '.join(shown)})"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` validated like ``from_env`` overrides."""
        for name, value in changes.items():
            if name not in _SPECS:
                raise ConfigError(name, value, "a setting name")
            changes[name] = _check(name, _SPECS[name], value)
        return dataclasses.replace(self, **changes)


def effective(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    arguments: Collection[str] = (),
) -> list[Entry]:
    """Every setting in force, with its source (argument, environment or default) and its
    value with secrets masked (OTLP header values, URL credentials and query strings).

    ``environ`` (default ``os.environ``) is the environment ``settings`` were read from;
    ``arguments`` the names given in code.
    """
    if environ is None:
        import os

        environ = os.environ
    return describe(settings, _SPECS, environ, frozenset(arguments), p.INVALID)


def _either(specific: int | None, general: int) -> int:
    return general if specific is None else specific


def _masked(spec: _Spec, value: Any) -> Any:
    """``value`` as ``repr`` may show it (see :meth:`Settings.__repr__`)."""
    if isinstance(value, Mapping):
        if spec.secret:
            return dict.fromkeys(value, MASK)
        sensitive = redact.policy().is_sensitive
        return {k: MASK if sensitive(str(k)) else _scrubbed(v) for k, v in value.items()}
    if isinstance(value, str):
        return mask_url(value) if spec.kind.name == "url" else redact.scrub_urls(value)
    if isinstance(value, tuple):
        return tuple(redact.scrub_urls(item) if isinstance(item, str) else item for item in value)
    return value


def _scrubbed(value: Any) -> Any:
    return redact.scrub_urls(value) if isinstance(value, str) else value


class _Unset:
    pass


_UNSET: Final = _Unset()


def _check(name: str, spec: _Spec, value: Any) -> Any:
    if value is None and _default_of(name) is None:
        return None
    return spec.kind.check(name, value, secret=spec.secret)


def _resolve(
    name: str, spec: _Spec, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> Any:
    if name in overrides:
        return _check(name, spec, overrides[name])
    raw = environ.get(spec.env, "") if spec.env else ""
    if not raw.strip():  # the specification: an empty value is unset
        return _UNSET
    parsed = spec.kind.parse(raw)
    if parsed is p.INVALID:
        shown = "***" if spec.secret else mask_url(raw) if spec.kind.name == "url" else raw
        shown = redact.scrub_urls(shown)[:80]
        warnings.warn(
            f"unified_obs: ignoring {spec.env}={shown!r}; "
            f"expected {spec.kind.accepted_in_environment}",
            RuntimeWarning,
            stacklevel=4,
        )
        return _UNSET
    return parsed


def _default_of(name: str) -> Any:
    default = Settings.__dataclass_fields__[name].default
    return default if default is not dataclasses.MISSING else _UNSET


def _fix_relations(settings: Settings, given: set[str], explicit: set[str]) -> Settings:
    """Check rules that tie fields together: raise if code set them, else warn and repair.

    ``given``: fields set in code; ``explicit``: fields set in code or the environment.
    A default batch size larger than a small queue is clamped silently.
    """
    batch, queue = settings.bsp_max_export_batch_size, settings.bsp_max_queue_size
    if batch > queue:
        if "bsp_max_export_batch_size" in explicit:
            _complain(
                given,
                {"bsp_max_export_batch_size", "bsp_max_queue_size"},
                "bsp_max_export_batch_size",
                batch,
                f"at most bsp_max_queue_size ({queue})",
            )
        settings = dataclasses.replace(settings, bsp_max_export_batch_size=queue)
    settings = _fix_sampler_arg(settings, given, explicit)
    budget = settings.drain_delay + settings.drain_timeout + settings.shutdown_timeout
    if budget > settings.grace_period - 1.0:
        _complain(
            given,
            {"drain_delay", "drain_timeout", "shutdown_timeout", "grace_period"},
            "drain_timeout",
            settings.drain_timeout,
            f"small enough that drain_delay + drain_timeout + shutdown_timeout ({budget:g}s) "
            f"fits inside grace_period ({settings.grace_period:g}s) with 1s to spare",
        )
    return settings


def _fix_sampler_arg(settings: Settings, given: set[str], explicit: set[str]) -> Settings:
    """``traces_sampler_arg`` is a ratio in [0, 1], except for ``parentbased_ratelimited``,
    where it is the root traces kept per second (default 100, must be > 0)."""
    arg = settings.traces_sampler_arg
    if settings.traces_sampler != _RATE_LIMITED:
        accepted, ok, fallback = "a ratio from 0 to 1", arg <= 1, 1.0
    elif "traces_sampler_arg" not in explicit:
        return dataclasses.replace(settings, traces_sampler_arg=_DEFAULT_ROOTS_PER_SECOND)
    else:
        accepted = f"a number of root traces per second > 0 for {_RATE_LIMITED}"
        ok, fallback = arg > 0, _DEFAULT_ROOTS_PER_SECOND
    if ok:
        return settings
    if given & {"traces_sampler", "traces_sampler_arg"}:
        raise ConfigError("traces_sampler_arg", arg, accepted)
    warnings.warn(
        f"unified_obs: ignoring OTEL_TRACES_SAMPLER_ARG={arg:g}; expected {accepted}",
        RuntimeWarning,
        stacklevel=4,
    )
    return dataclasses.replace(settings, traces_sampler_arg=fallback)


def _complain(given: set[str], related: set[str], name: str, value: object, accepted: str) -> None:
    if given & related:
        raise ConfigError(name, value, accepted)
    warnings.warn(
        f"unified_obs: environment gives {name}={value!r}; expected {accepted}",
        RuntimeWarning,
        stacklevel=5,
    )
