"""The effective configuration: the source of every value, and secrets masked everywhere."""

from __future__ import annotations

import pytest

from unified_obs.config import Settings, effective, mask_url

CANARY = "c4n4ry-s3cr3t"


def test_each_value_names_its_source() -> None:
    """A name given in code is an argument, a usable environment value the environment, an
    unusable one the default it fell back to, anything else the default."""
    environ = {
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_BSP_MAX_QUEUE_SIZE": "many",
    }
    with pytest.warns(RuntimeWarning, match="OTEL_BSP_MAX_QUEUE_SIZE"):
        settings = Settings.from_env(environ, service_name="from-code")
    shown = {e.name: e for e in effective(settings, environ, arguments={"service_name"})}
    assert (shown["service_name"].value, shown["service_name"].source) == ("from-code", "argument")
    assert shown["traces_sampler"].source == "environment"
    assert shown["bsp_max_queue_size"].source == "default (environment value ignored)"
    assert (shown["log_level"].value, shown["log_level"].source) == ("info", "default")
    assert shown["propagators"].value == ["tracecontext", "baggage"]
    assert shown["otlp_endpoint"].env == "OTEL_EXPORTER_OTLP_ENDPOINT"


def test_secrets_are_masked_in_every_field() -> None:
    """Header values (generic and per signal), URL user-info and query strings, and resource
    attributes under secret-looking keys never appear; header names and hosts do."""
    settings = Settings.from_env(
        {},
        otlp_headers={"authorization": f"Bearer {CANARY}"},
        otlp_logs_headers={"x-token": CANARY},
        otlp_endpoint=f"https://user:{CANARY}@collector.example:4318/base?key={CANARY}",
        resource_attributes={"deployment.api_key": CANARY, "team": "payments"},
    )
    rendered = repr([entry.as_dict() for entry in effective(settings, {})])
    assert CANARY not in rendered
    shown = {e.name: e.value for e in effective(settings, {})}
    assert shown["otlp_headers"] == {"authorization": "***"}
    assert shown["otlp_logs_headers"] == {"x-token": "***"}
    assert shown["otlp_endpoint"] == "https://***@collector.example:4318/base?***"
    assert shown["resource_attributes"] == {"deployment.api_key": "***", "team": "payments"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
        (f"http://u:{CANARY}@h:1/v1/traces", "http://***@h:1/v1/traces"),
        (f"http://{CANARY}@h", "http://***@h"),
        (f"http://h/p?{CANARY}", "http://h/p?***"),
        (f"http://h/p#{CANARY}", "http://h/p"),
        (f"not a url {CANARY}", "***"),
        (f"http://[{CANARY}", "***"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    """Scheme, host, port and path stay; user-info, query and fragment go; anything that is
    not a URL with a host is masked whole."""
    assert mask_url(url) == shown


def test_an_unusable_endpoint_in_the_environment_is_not_echoed_with_its_credentials() -> None:
    """The warning for an invalid URL in the environment masks its user-info (it used to
    repeat the value verbatim, password included)."""
    with pytest.warns(RuntimeWarning) as caught:
        Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"htp://user:{CANARY}@collector"})
    message = str(caught[0].message)
    assert "'htp://[REDACTED]@collector'" in message
    assert CANARY not in message
