"""Settings: validation of code values, environment fallbacks, precedence, OTLP resolution."""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path
from typing import Any

import pytest

import unified_obs as obs
from unified_obs._setup import active
from unified_obs.config import ENV_VARS, Settings
from unified_obs.errors import ConfigError

_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

# (field, bad value given in code, a piece of the "accepted" text the message must show)
_BAD_CODE_VALUES: list[tuple[str, Any, str]] = [
    ("traces_exporter", "zipkin", "otlp, console, none"),
    ("metrics_exporter", 3, "otlp, console, none"),
    ("logs_exporter", "", "otlp, console, none"),
    ("traces_sampler", "sometimes", "parentbased_always_on"),
    ("traces_sampler_arg", 1.5, "from 0 to 1"),
    ("traces_sampler_arg", -0.1, "from 0 to 1"),
    ("traces_sampler_arg", float("nan"), "from 0 to 1"),
    ("propagators", "tracecontext", "list of names"),
    ("propagators", ["b3"], "tracecontext, baggage, none"),
    ("otlp_endpoint", "htp://collector:4318", "http://"),
    ("otlp_endpoint", "http://127.0.0.1:70000", "http://"),
    ("otlp_endpoint", "http://", "with a host"),
    ("otlp_endpoint", "http://127.0.0.1:0", "http://"),
    ("otlp_protocol", "grpcx", "http/protobuf, grpc"),
    ("otlp_timeout", 0, "from 0.001 to 600"),
    ("otlp_timeout", -1.0, "from 0.001 to 600"),
    ("otlp_traces_endpoint", "ftp://collector", "http://"),
    ("otlp_logs_protocol", "thrift", "http/protobuf, grpc"),
    ("bsp_max_queue_size", 0, "from 1 to 1000000"),
    ("bsp_max_queue_size", -5, "from 1 to 1000000"),
    ("bsp_max_export_batch_size", 1.5, "whole number"),
    ("attribute_value_length_limit", True, "whole number"),
    ("service_name", "", "non-empty string"),
    ("service_name", "s" * 300, "at most 255"),
    ("service_version", 42, "non-empty string"),
    ("log_level", "verbose", "debug, info, warning, error, critical"),
    ("log_format", "xml", "auto, json, console"),
    ("log_stdlib", "yes", "True or False"),
    ("sdk_disabled", 1, "True or False"),
    ("resource_attributes", ["team=core"], "mapping of str to str"),
    ("resource_attributes", {"": "x"}, "mapping of str to str"),
    ("shutdown_timeout", 0, "from 0.01 to 600"),
    ("drain_delay", -1, "from 0 to 600"),
    ("grace_period", float("inf"), "from 0.1 to 3600"),
    ("redact_keys", "password", "list of names"),
    ("metric_export_interval", 0.01, "from 0.1 to 86400"),
    ("metrics_cardinality_limit", 0, "from 1 to 1000000"),
]


@pytest.mark.parametrize(("field", "value", "accepted"), _BAD_CODE_VALUES)
def test_bad_value_in_code_raises_config_error(field: str, value: Any, accepted: str) -> None:
    """Each bad value given in code raises ConfigError naming field, value and what is accepted."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, **{field: value})
    message = str(caught.value)
    assert caught.value.field == field
    assert message.startswith(f"{field}=")
    assert repr(value)[:60] in message
    assert accepted in message
    assert isinstance(caught.value, ValueError)


def test_distinct_bad_inputs_cover_at_least_twenty() -> None:
    """The table above really holds 20+ distinct (field, value) pairs."""
    distinct = {(field, repr(value)) for field, value, _ in _BAD_CODE_VALUES}
    assert len(distinct) >= 20


@pytest.mark.parametrize("field", ["otlp_headers", "otlp_traces_headers", "otlp_logs_headers"])
def test_secret_headers_are_masked_in_errors(field: str) -> None:
    """A bad headers value never shows the secret it carries."""
    bad = {"authorization": "Bearer s3cr3t-token", "x-retries": 3}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, **{field: bad})
    message = str(caught.value)
    assert "s3cr3t" not in message
    assert f"{field}='***'" in message
    assert "mapping of str to str" in message


def test_setup_raises_config_error_and_leaves_nothing_behind() -> None:
    """setup() with a bad argument raises before building anything: no handle, no threads."""
    threads = threading.active_count()
    bad: dict[str, Any] = {"traces_exporter": "jaeger"}
    with pytest.raises(ConfigError, match="traces_exporter='jaeger'"):
        obs.setup(service_name="svc", environ={}, **bad)
    assert active() is None
    assert threading.active_count() == threads


def test_unknown_option_name_raises() -> None:
    """A misspelt option is a ConfigError that lists the known names."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, servce_name="checkout")
    assert caught.value.field == "servce_name"
    assert "service_name" in str(caught.value)
    typo: dict[str, Any] = {"log_levle": "info"}
    with pytest.raises(ConfigError, match="log_levle"):
        obs.setup(environ={}, service_name="svc", **typo)


@pytest.mark.parametrize(
    ("variable", "raw", "field", "default"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "traces_exporter", None),
        ("OTEL_TRACES_SAMPLER", "sometimes", "traces_sampler", "parentbased_always_on"),
        ("OTEL_TRACES_SAMPLER_ARG", "2", "traces_sampler_arg", 1.0),
        ("OTEL_TRACES_SAMPLER_ARG", "half", "traces_sampler_arg", 1.0),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "abc", "bsp_max_queue_size", 2048),
        ("OTEL_BSP_SCHEDULE_DELAY", "-5", "bsp_schedule_delay", 5.0),
        ("OTEL_SDK_DISABLED", "yes", "sdk_disabled", False),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "htp://x", "otlp_endpoint", None),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp", "otlp_protocol", "http/protobuf"),
        ("OTEL_PROPAGATORS", "b3,tracecontext", "propagators", ("tracecontext", "baggage")),
        ("UNIFIED_OBS_LOG_LEVEL", "loud", "log_level", "info"),
        ("UNIFIED_OBS_SHUTDOWN_TIMEOUT", "forever", "shutdown_timeout", 5.0),
    ],
)
def test_bad_environment_value_warns_once_and_falls_back(
    variable: str, raw: str, field: str, default: Any
) -> None:
    """A bad environment value emits exactly one RuntimeWarning and the default is used."""
    with pytest.warns(RuntimeWarning) as record:
        settings = Settings.from_env({variable: raw})
    assert len(record) == 1
    assert variable in str(record[0].message)
    assert getattr(settings, field) == default


def test_bad_secret_environment_value_is_masked_in_warning() -> None:
    """A malformed headers variable warns without echoing its content."""
    with pytest.warns(RuntimeWarning) as record:
        settings = Settings.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "authorization s3cr3t"})
    assert "s3cr3t" not in str(record[0].message)
    assert "***" in str(record[0].message)
    assert settings.otlp_headers == {}


def test_each_bad_environment_variable_warns_separately() -> None:
    """Two bad variables give two warnings; the good ones still apply."""
    environ = {
        "OTEL_TRACES_EXPORTER": "zipkin",
        "OTEL_BSP_MAX_QUEUE_SIZE": "many",
        "OTEL_SERVICE_NAME": "svc",
    }
    with pytest.warns(RuntimeWarning) as record:
        settings = Settings.from_env(environ)
    assert len(record) == 2
    assert settings.service_name == "svc"


def test_precedence_argument_over_environment_over_default() -> None:
    """An explicit argument beats the environment, which beats the default."""
    environ = {"OTEL_SERVICE_NAME": "from-env", "OTEL_BSP_MAX_QUEUE_SIZE": "100"}
    assert Settings.from_env(environ, service_name="from-arg").service_name == "from-arg"
    assert Settings.from_env(environ).service_name == "from-env"
    assert Settings.from_env({}).service_name is None
    assert Settings.from_env(environ).bsp_max_queue_size == 100
    assert Settings.from_env(environ, bsp_max_queue_size=4096).bsp_max_queue_size == 4096
    assert Settings.from_env({}).bsp_max_queue_size == 2048


def test_environment_durations_are_milliseconds() -> None:
    """OTEL_* durations are milliseconds in the environment and seconds in Settings."""
    settings = Settings.from_env(
        {"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_EXPORTER_OTLP_TIMEOUT": "1500"}
    )
    assert settings.bsp_schedule_delay == pytest.approx(0.25)
    assert settings.otlp_timeout == pytest.approx(1.5)


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_empty_environment_value_is_unset(raw: str) -> None:
    """An empty (or blank) value is treated as unset, without a warning."""
    settings = Settings.from_env({"OTEL_TRACES_EXPORTER": raw, "OTEL_BSP_MAX_QUEUE_SIZE": raw})
    assert settings.traces_exporter is None
    assert settings.bsp_max_queue_size == 2048


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("TRUE", True), ("false", False)])
def test_sdk_disabled_from_environment(raw: str, expected: bool) -> None:
    """OTEL_SDK_DISABLED is true only for case-insensitive 'true'."""
    assert Settings.from_env({"OTEL_SDK_DISABLED": raw}).sdk_disabled is expected


def test_sdk_disabled_setup_has_no_sdk_and_no_threads() -> None:
    """With the SDK disabled there is no provider and no background thread; logs still work."""
    threads = threading.active_count()
    tel = obs.setup(
        environ={"OTEL_SDK_DISABLED": "true"},
        service_name="svc",
        log_format="json",
        handle_signals=False,  # the signal watcher is a thread of its own, SDK or not
    )
    assert tel.tracer_provider is None
    assert tel.log_pipeline.provider is None
    assert threading.active_count() == threads
    assert tel.shutdown(timeout=1).outcomes == {}


def test_per_signal_otlp_resolution() -> None:
    """Per-signal variables win; the base endpoint gets /v1/<signal> for HTTP."""
    settings = Settings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=base,x-team=core",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "api-key=logs%20key",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "500",
        }
    )
    traces, logs, metrics = settings.otlp("traces"), settings.otlp("logs"), settings.otlp("metrics")
    assert traces.endpoint == "http://traces:9999/custom"
    assert logs.endpoint == "http://collector:4318/v1/logs"
    assert metrics.endpoint == "http://collector:4318/v1/metrics"
    assert traces.headers == {"api-key": "base", "x-team": "core"}
    assert logs.headers == {"api-key": "logs key"}
    assert metrics.timeout == pytest.approx(0.5)
    assert traces.timeout == pytest.approx(2.0)
    assert {traces.protocol, logs.protocol} == {"http/protobuf"}


def test_grpc_protocol_uses_the_base_endpoint_as_is() -> None:
    """gRPC endpoints carry no path; the default gRPC port is 4317."""
    settings = Settings.from_env({}, otlp_protocol="grpc")
    assert settings.otlp("traces").endpoint == "http://localhost:4317"
    mixed = Settings.from_env(
        {}, otlp_endpoint="http://c:4317", otlp_protocol="grpc", otlp_logs_protocol="http/protobuf"
    )
    assert mixed.otlp("traces").endpoint == "http://c:4317"
    assert mixed.otlp("logs").endpoint == "http://c:4317/v1/logs"


def test_exporter_defaults_to_otlp_only_when_an_endpoint_is_configured() -> None:
    """No endpoint: nothing exported; a per-signal endpoint turns on only that signal."""
    assert Settings.from_env({}).exporter("traces") == "none"
    assert Settings.from_env({}, otlp_endpoint="http://c:4318").exporter("logs") == "otlp"
    only_logs = Settings.from_env({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:4318/v1/logs"})
    assert only_logs.exporter("logs") == "otlp"
    assert only_logs.exporter("traces") == "none"
    explicit = Settings.from_env({"OTEL_TRACES_EXPORTER": "none"}, otlp_endpoint="http://c:4318")
    assert explicit.exporter("traces") == "none"


def test_batch_larger_than_queue_raises_in_code_and_is_repaired_from_environment() -> None:
    """bsp batch > queue: ConfigError in code; from the environment a warning and batch = queue."""
    with pytest.raises(ConfigError, match=r"bsp_max_export_batch_size=600.*bsp_max_queue_size"):
        Settings.from_env({}, bsp_max_queue_size=100, bsp_max_export_batch_size=600)
    with pytest.raises(ConfigError, match="bsp_max_export_batch_size"):
        Settings.from_env({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "600"}, bsp_max_queue_size=100)
    environ = {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "600"}
    with pytest.warns(RuntimeWarning, match="bsp_max_export_batch_size"):
        settings = Settings.from_env(environ)
    assert settings.bsp_max_export_batch_size == 100


def test_small_queue_clamps_the_default_batch_size_silently() -> None:
    """A queue smaller than the default batch (512) is fine: the batch follows the queue."""
    assert Settings.from_env({}, bsp_max_queue_size=100).bsp_max_export_batch_size == 100
    from_env = Settings.from_env({"OTEL_BSP_MAX_QUEUE_SIZE": "64"})
    assert from_env.bsp_max_export_batch_size == 64


def test_drain_and_shutdown_budget_must_fit_the_grace_period() -> None:
    """drain_delay + drain_timeout + shutdown_timeout must fit grace_period with 1 s to spare."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, drain_delay=10, drain_timeout=15, shutdown_timeout=5)
    assert "grace_period (30s)" in str(caught.value)
    with pytest.raises(ConfigError, match="drain_timeout"):
        Settings.from_env({}, grace_period=10)
    fits = Settings.from_env({}, drain_delay=2, drain_timeout=20, shutdown_timeout=5)
    assert fits.grace_period == 30.0
    with pytest.warns(RuntimeWarning, match="grace_period"):
        Settings.from_env({"UNIFIED_OBS_GRACE_PERIOD": "5"})


def test_replace_validates_like_from_env() -> None:
    """Settings.replace rejects bad values and unknown names like from_env does."""
    settings = Settings.from_env({})
    assert settings.replace(log_level="DEBUG").log_level == "debug"
    with pytest.raises(ConfigError, match="log_level"):
        settings.replace(log_level="loud")
    with pytest.raises(ConfigError, match="nope"):
        settings.replace(nope=1)


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they are built."""
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.service_name = "x"  # type: ignore[misc]


def test_every_settings_field_has_an_environment_variable() -> None:
    """ENV_VARS maps one variable to every Settings field (the configuration guide mirrors it)."""
    assert sorted(ENV_VARS.values()) == sorted(f.name for f in dataclasses.fields(Settings))


def test_configuration_guide_lists_every_environment_variable() -> None:
    """The configuration guide's table names every variable unified_obs reads (the
    reference page is generated from the code, the guide is written by hand)."""
    listed = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", _GUIDE.read_text(), flags=re.MULTILINE))
    missing = sorted(set(ENV_VARS) - listed)
    assert not missing, f"docs/configuration.md table lacks: {missing}"
