"""``SetupOptions``: the typed keyword arguments of ``setup()``, one per ``Settings`` field.

A test keeps these keys equal to the ``Settings`` fields.  Values are still validated at
run time (``ConfigError``); the types let mypy and editors catch typos first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from typing_extensions import TypedDict

__all__ = ["SetupOptions"]

_Exporter = Literal["otlp", "console", "none"]
_Protocol = Literal["http/protobuf", "grpc"]
_Sampler = Literal[
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_ratelimited",
]


class SetupOptions(TypedDict, total=False):
    """Keyword arguments accepted by ``unified_obs.setup()`` (see docs/configuration.md)."""

    service_name: str | None
    service_version: str | None
    environment: str | None
    resource_attributes: Mapping[str, str]
    sdk_disabled: bool
    traces_exporter: _Exporter | None
    metrics_exporter: _Exporter | None
    logs_exporter: _Exporter | None
    traces_sampler: _Sampler
    traces_sampler_arg: float
    traces_keep_errors: bool
    traces_keep_slower_than: float | None
    propagators: Sequence[Literal["tracecontext", "baggage", "none"]]
    otlp_endpoint: str | None
    otlp_protocol: _Protocol
    otlp_headers: Mapping[str, str]
    otlp_timeout: float
    otlp_traces_endpoint: str | None
    otlp_traces_protocol: _Protocol | None
    otlp_traces_headers: Mapping[str, str] | None
    otlp_traces_timeout: float | None
    otlp_metrics_endpoint: str | None
    otlp_metrics_protocol: _Protocol | None
    otlp_metrics_headers: Mapping[str, str] | None
    otlp_metrics_timeout: float | None
    otlp_logs_endpoint: str | None
    otlp_logs_protocol: _Protocol | None
    otlp_logs_headers: Mapping[str, str] | None
    otlp_logs_timeout: float | None
    bsp_schedule_delay: float
    bsp_export_timeout: float
    bsp_max_queue_size: int
    bsp_max_export_batch_size: int
    attribute_value_length_limit: int
    attribute_count_limit: int
    span_attribute_value_length_limit: int | None
    span_attribute_count_limit: int | None
    logrecord_attribute_value_length_limit: int | None
    logrecord_attribute_count_limit: int | None
    metric_export_interval: float
    metrics_namespace: str | None
    metrics_cardinality_limit: int
    metrics_multiprocess_dir: str | None
    prometheus_without_scope_info: bool
    prometheus_without_target_info: bool
    log_level: Literal["debug", "info", "warning", "error", "critical"]
    log_format: Literal["auto", "json", "console"]
    log_stdlib: bool
    redact_keys: Sequence[str]
    shutdown_timeout: float
    drain_delay: float
    drain_timeout: float
    grace_period: float
    handle_signals: bool
    health_details: bool
    faults_enabled: bool
    outbound_http: bool
    runtime_metrics: bool
    http_known_methods: Sequence[str] | None
