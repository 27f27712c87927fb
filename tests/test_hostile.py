"""Hostile input: a value an attacker or a careless caller sends never breaks an output,
never grows it past its limits and never lets a secret through.

One test per finding of issue #23; the property-based sweep is in
``test_hostile_properties.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import unified_obs as obs
from unified_obs import metrics
from unified_obs.metrics._safe_labels import label_value

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMTOOL = shutil.which("promtool")


def promtool_check(body: bytes) -> str:
    """promtool's complaints about a text exposition ("" when it passes)."""
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    return "" if result.returncode == 0 else (result.stdout + result.stderr).decode()


def scrape_both() -> tuple[bytes, bytes]:
    """``/metrics`` in text format and in OpenMetrics; both must answer 200."""
    text_status, _, text = metrics.render(None, None)
    om_status, _, om = metrics.render(OPENMETRICS, None)
    assert (text_status, om_status) == (200, 200), (text, om)
    return text, om


def series(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition, by name and sorted labels (without the scope
    labels every sample carries)."""
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k[:11] != "otel_scope_"))): (
            s.value
        )
        for family in parse_text(body.decode())
        for s in family.samples
    }


def test_lone_surrogate_label_value_keeps_metrics_valid() -> None:
    """A label value holding a lone surrogate no longer turns every scrape into a 500: the
    value is exposed with U+FFFD, the other series stay, and promtool and both of
    prometheus_client's parsers accept the output."""
    obs.setup(service_name="hostile", environ={})
    obs.counter("orders", "Orders", labels=("channel",)).labels("web").inc()
    obs.counter("hostile.values", "Hostile", labels=("v",)).labels(v="a\ud800b").inc()
    text, om = scrape_both()
    assert promtool_check(text) == ""
    found = series(text)
    assert found[("orders_total", (("channel", "web"),))] == 1.0
    assert found[("hostile_values_total", (("v", "a\ufffdb"),))] == 1.0
    assert list(parse_om(om.decode()))[-1] is not None  # type: ignore[no-untyped-call]


def test_surrogates_from_every_source_are_sanitised() -> None:
    """Surrogates reaching the registry another way (an OpenTelemetry API attribute, a
    collector of the user's own on the default registry) are sanitised too."""
    from prometheus_client import REGISTRY

    obs.setup(service_name="hostile", environ={})
    meter = otel_metrics.get_meter("third.party")
    meter.create_counter("lib.calls").add(1, {"peer": "\udcff"})
    own = PromCounter("own_things", "Own", ["k"], registry=REGISTRY)
    try:
        own.labels("\ud83d").inc()
        text, om = scrape_both()
        assert promtool_check(text) == ""
        found = series(text)
        assert found[("lib_calls_total", (("peer", "\ufffd"),))] == 1.0
        assert found[("own_things_total", (("k", "\ufffd"),))] == 1.0
        assert len(list(parse_om(om.decode()))) > 2  # type: ignore[no-untyped-call]
    finally:
        REGISTRY.unregister(own)


def test_render_of_a_clean_registry_is_unchanged() -> None:
    """The sanitised view is the fallback: a registry with nothing to sanitise renders
    byte for byte what prometheus_client renders."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry()
    PromCounter("plain", "Plain", ["k"], registry=registry).labels("ü").inc()
    assert metrics.render(None, None, registry=registry)[2] == generate_latest(registry)


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("plain", 10, "plain"),
        ("x" * 20, 5, "xxxxx"),
        ("\ud800", 10, "\ufffd"),
        (42, 10, "42"),
    ],
)
def test_label_value_is_encodable_and_cut(value: Any, limit: int, expected: str) -> None:
    """label_value: text that UTF-8 encodes, at most ``limit`` characters."""
    assert label_value(value, limit) == expected


CANARY = "s3cr3t-canary"


def test_settings_repr_masks_every_secret() -> None:
    """repr of the settings, of an OTLP target and of the telemetry handle shows no header
    token, no URL user-info and no resource attribute under a sensitive key."""
    tel = obs.setup(
        service_name="hostile",
        environ={"OTEL_RESOURCE_ATTRIBUTES": f"api_key={CANARY},team=core"},
        traces_exporter="none",
        otlp_endpoint=f"http://user:{CANARY}@collector:4318",
        otlp_logs_endpoint=f"http://user:{CANARY}@collector:4318/v1/logs?token={CANARY}",
        otlp_headers={"authorization": f"Bearer {CANARY}"},
        otlp_traces_headers={"x-api-key": CANARY},
    )
    shown = [repr(tel.settings), repr(tel), str(tel.settings)]
    shown += [repr(tel.settings.otlp(signal)) for signal in ("traces", "metrics", "logs")]
    for text in shown:
        assert CANARY not in text
    assert "authorization" in shown[0]
    assert "collector:4318" in shown[0]
    assert "team" in shown[0]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("otlp_endpoint", f"htp://user:{CANARY}@host"),
        ("otlp_traces_endpoint", f"user:{CANARY}@host:4318"),
        ("otlp_logs_endpoint", f"http://user:{CANARY}@"),
        ("service_version", f"x://u:{CANARY}@h " * 30),
        ("traces_exporter", f"otlp://u:{CANARY}@h"),
    ],
)
def test_config_error_never_prints_url_credentials(field: str, bad: str) -> None:
    """A ConfigError for a value holding a URL with user-info masks the user-info."""
    arguments: dict[str, Any] = {field: bad}
    with pytest.raises(obs.ConfigError) as caught:
        obs.setup(service_name="hostile", environ={}, **arguments)
    assert CANARY not in str(caught.value)
    assert str(caught.value).startswith(f"{field}=")


def test_environment_warning_never_prints_url_credentials() -> None:
    """An unusable endpoint in the environment warns without its user-info."""
    from unified_obs.config import Settings

    with pytest.warns(RuntimeWarning) as record:
        Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"htp://user:{CANARY}@host"})
    assert CANARY not in str(record[0].message)


def test_otlp_log_records_keep_the_log_record_limits() -> None:
    """An exported log record keeps the log record limits: a 200,000-character field and
    message are cut to the value length, 300 fields to the attribute count (they used to
    be exported whole: the SDK's limits applied to spans only)."""
    from tests.otlp_receiver import attributes, otlp_receiver

    fields = {f"f{i}": i for i in range(300)}
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="hostile",
            environ={},
            otlp_endpoint=endpoint,
            traces_exporter="none",
            metrics_exporter="none",
            handle_signals=False,
            logrecord_attribute_value_length_limit=1000,
            logrecord_attribute_count_limit=50,
        )
        log = obs.get_logger("hostile")
        log.info("m" * 200_000, big="x" * 200_000, nested={"k": "y" * 200_000}, **fields)
        assert obs.shutdown(timeout=5).ok
        records = received.logs()
    (record,) = [rec for _, rec in records if rec.body.string_value.startswith("m")]
    values = attributes(record.attributes)
    assert len(record.body.string_value) == 1000
    assert len(values["big"]) == 1000
    assert len(values["nested"]) == 1000
    assert len(values) == 50


def test_otlp_log_records_carry_no_url_credentials() -> None:
    """URL user-info in the message, in a field, inside a nested value and in exception
    text never reaches an exported log record."""
    from tests.otlp_receiver import otlp_receiver

    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="hostile",
            environ={},
            otlp_endpoint=endpoint,
            traces_exporter="none",
            metrics_exporter="none",
            handle_signals=False,
        )
        log = obs.get_logger("hostile")
        url = f"postgres://app:{CANARY}@db:5432/orders"
        try:
            raise ConnectionError(f"cannot reach {url}")
        except ConnectionError:
            log.exception(f"connect {url} failed", dsn=url, tries=[{"url": url}])
        assert obs.shutdown(timeout=5).ok
        records = received.logs()
    (record,) = [rec for _, rec in records if "connect" in rec.body.string_value]
    assert CANARY not in str(record)
    assert "postgres://[REDACTED]@db:5432/orders" in record.body.string_value


def test_stdout_line_keeps_the_log_record_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """A 10 MB message, a 200,000-character field, a huge nested value and 300 fields
    give one stdout line within the log record limits (a 10 MB line used to be written)."""
    obs.setup(
        service_name="hostile",
        environ={},
        log_format="json",
        handle_signals=False,
        logrecord_attribute_value_length_limit=1000,
        logrecord_attribute_count_limit=50,
    )
    capsys.readouterr()
    fields = {f"f{i}": i for i in range(300)}
    obs.get_logger("hostile").info(
        "m" * 10_000_000, big="x" * 200_000, nested={"k": ["y" * 200_000]}, **fields
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert len(out) < 100_000
    (line,) = _stdout_lines_from(out)
    assert len(line["event"]) == 1000
    assert len(line["big"]) == 1000
    assert len(line["nested"]) <= 1000
    assert len([k for k in line if k.startswith("f") or k in ("big", "nested")]) == 50
    assert line["service.name"] == "hostile"


def _stdout_lines_from(out: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in out.splitlines()]


def test_stdout_carries_no_url_credentials_and_redacts_inside_lists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """URL user-info in the message, a field or exception text, and a password in a dict
    inside a list, never reach stdout (both used to be printed)."""
    obs.setup(service_name="hostile", environ={}, log_format="json", handle_signals=False)
    capsys.readouterr()
    url = f"postgres://app:{CANARY}@db:5432/orders"
    log = obs.get_logger("hostile")
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        log.exception(f"connect {url} failed", dsn=url)
    log.info("order", items=[{"sku": 1, "password": CANARY}, ({"token": CANARY},)])
    out = capsys.readouterr().out
    assert CANARY not in out
    first, second = _stdout_lines_from(out)
    assert first["event"] == "connect postgres://[REDACTED]@db:5432/orders failed"
    assert second["items"] == [{"sku": 1, "password": "[REDACTED]"}, [{"token": "[REDACTED]"}]]


def test_label_values_are_cut_and_made_encodable_when_recorded() -> None:
    """A label value longer than the limit is cut when recorded, and a lone surrogate is
    replaced then (so OTLP and /metrics see the same, encodable value)."""
    obs.setup(service_name="hostile", environ={}, attribute_value_length_limit=100)
    counter = obs.counter("long.values", "Long", labels=("v",))
    counter.labels(v="x" * 5000).inc()
    counter.labels("\ud800" * 3).inc()
    shown = {key[0] for key, _ in counter.series()}
    assert shown == {"x" * 100, "\ufffd" * 3}


def test_recorded_arguments_redact_inside_lists_and_urls() -> None:
    """A recorded argument that is a list of dicts hides their sensitive keys, and one
    holding a URL with user-info shows the URL without it."""
    from unified_obs.testing import capture

    @obs.traced(record_args=("items", "dsn"))
    def handle(items: list[dict[str, str]], dsn: str) -> None:
        return None

    with capture(handle_signals=False) as cap:
        handle([{"sku": "1", "password": CANARY}], f"postgres://app:{CANARY}@db/x")
        attributes = dict(cap.spans[0].attributes or {})
    assert CANARY not in repr(attributes)
    assert attributes["arg.dsn"] == "postgres://[REDACTED]@db/x"
    assert "'sku': '1'" in str(attributes["arg.items"])


def test_a_wrong_labels_call_warns_without_the_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """labels() with the wrong names or count drops the measurement and warns naming the
    instrument and what was passed, never the values (a value may be a secret)."""
    obs.setup(service_name="hostile", environ={}, log_format="json", handle_signals=False)
    counter = obs.counter("logins", "Logins", labels=("user",))
    capsys.readouterr()
    counter.labels(token=CANARY).inc()
    metrics._series.forget_warnings()
    counter.labels(CANARY, CANARY).inc()
    out = capsys.readouterr().out
    assert out.count("logins expects labels") == 2
    assert CANARY not in out


def test_otel_api_attribute_names_give_valid_label_names() -> None:
    """Metrics recorded through the OpenTelemetry API with attributes named ``le``,
    ``quantile`` or ``__name__`` give an exposition promtool and both parsers accept (an
    ``le`` attribute on a histogram used to cost the whole scrape); the attributes keep
    their values under escaped names."""
    obs.setup(service_name="hostile", environ={})
    meter = otel_metrics.get_meter("third.party")
    meter.create_counter("lib.reserved").add(1, {"le": "x", "__name__": "y", "quantile": "z"})
    meter.create_histogram("lib.sizes").record(3, {"le": "a"})
    text, om = scrape_both()
    assert promtool_check(text) == ""
    found = series(text)
    reserved = [labels for (name, labels) in found if name == "lib_reserved_total"]
    assert ("key_le", "x") in reserved[0]
    assert ("key_quantile", "z") in reserved[0]
    sizes = [labels for (name, labels) in found if name == "lib_sizes_count"]
    assert [("key_le", "a") in labels for labels in sizes] == [True]
    assert list(parse_om(om.decode()))  # type: ignore[no-untyped-call]
