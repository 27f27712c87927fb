"""OpenTelemetry -> Prometheus exactly as the specification says: label names, attribute
values, scope labels, target_info, units, names shared with OpenTelemetry-API metrics, and
the OTLP side's typed attribute values."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_families

import unified_obs as obs
from tests.otlp_receiver import attributes, otlp_receiver
from unified_obs import metrics
from unified_obs._semconv import SCHEMA_URL, library_version
from unified_obs.metrics._names import attribute_text, prom_label, prom_labels
from unified_obs.resource import host_arch, os_type

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OURS = {"otel_scope_name": "unified_obs", "otel_scope_version": library_version()}


def families(accept: str | None = None) -> dict[str, Any]:
    """The families of one scrape by name (OpenMetrics parsed strictly)."""
    status, _, body = metrics.render(accept, None)
    assert status == 200
    parse: Any = text_string_to_metric_families if accept else text_families
    return {f.name: f for f in parse(body.decode())}


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("http.route", "http_route"),
        ("http.response.status_code", "http_response_status_code"),
        ("2xx", "key_2xx"),
        ("_private", "key_private"),
        ("__reserved", "key_reserved"),
        ("a..b--c", "a_b_c"),
        ("a:b", "a_b"),
        ("ünï", "key_n_"),
    ],
)
def test_attribute_keys_become_valid_label_names(key: str, label: str) -> None:
    """Invalid characters become ``_``, runs of ``_`` one ``_``; a leading digit or ``_``
    gets the prefix ``key``, so no label name starts with the reserved ``__``."""
    assert prom_label(key) == label


def test_colliding_attribute_keys_share_one_label() -> None:
    """Attributes that map to one label name are joined by ``;`` in the order of their
    original keys, not silently overwritten."""
    assert prom_labels({"a_b": "2", "a.b": "1", "c": "3"}) == {"a_b": "1;2", "c": "3"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (True, "true"),
        (False, "false"),
        (200, "200"),
        (0.25, "0.25"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        ((1, 2), "[1,2]"),
        (["a", True], '["a",true]'),
        (b"\x00\x01", "AAE="),
    ],
)
def test_attribute_values_are_written_the_specification_way(value: object, text: str) -> None:
    """Non-string attribute values become text as the attribute specification writes them
    for non-OTLP formats (JSON literals, base64 bytes), not as Python reprs."""
    assert attribute_text(value) == text


def test_our_series_carry_our_scope_and_api_series_theirs() -> None:
    """Every sample of our instruments carries ``otel_scope_name``/``otel_scope_version`` of
    the library; an OpenTelemetry-API metric carries its own meter's, in both formats."""
    obs.setup(service_name="scoped", environ={})
    obs.counter("orders", labels=("channel",)).labels("web").inc()
    meter = otel_metrics.get_meter("contrib.lib", "3.2")
    meter.create_counter("lib.calls").add(1, {"flag": True})
    for accept in (None, OPENMETRICS):
        found = families(accept)
        assert [s.labels for s in found["orders"].samples if s.name == "orders_total"] == [
            {"channel": "web", **OURS}
        ]
        assert [s.labels for s in found["lib_calls"].samples] == [
            {"flag": "true", "otel_scope_name": "contrib.lib", "otel_scope_version": "3.2"}
        ]


def test_a_shared_name_keeps_both_metrics_visible() -> None:
    """An OpenTelemetry-API histogram named like ours (contrib's
    ``http.server.request.duration``) is no longer dropped: one family holds both, told apart
    by their scope labels, with one ``# TYPE`` line."""
    obs.setup(service_name="shared", environ={})
    ours = obs.histogram("http.server.request.duration", unit="s", labels=("http.route",))
    ours.labels("/a").observe(0.1)
    meter = otel_metrics.get_meter("opentelemetry.instrumentation.asgi", "0.66b2")
    theirs = meter.create_histogram("http.server.request.duration", unit="s")
    theirs.record(0.2, {"http.route": "/b"})
    for accept in (None, OPENMETRICS):
        family = families(accept)["http_server_request_duration_seconds"]
        counts = {
            (s.labels["otel_scope_name"], s.labels["http_route"]): s.value
            for s in family.samples
            if s.name.endswith("_count")
        }
        assert counts == {
            ("unified_obs", "/a"): 1.0,
            ("opentelemetry.instrumentation.asgi", "/b"): 1.0,
        }
    body = metrics.render(None, None)[2].decode()
    assert body.count("# TYPE http_server_request_duration_seconds ") == 1


def test_a_name_shared_across_types_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    """A name shared by metrics of different types cannot be one family: ours stays, the
    other is left out of /metrics and a warning names the clash."""
    obs.setup(service_name="clash", environ={})
    obs.gauge("queue.depth").set(4)
    otel_metrics.get_meter("lib").create_counter("queue.depth").add(1)
    found = families()
    assert found["queue_depth"].type == "gauge"
    assert [s.value for s in found["queue_depth"].samples] == [4.0]
    assert "'queue_depth' as a gauge and as a counter" in capsys.readouterr().out  # the log line


def test_api_metric_units_are_named_and_never_rescaled() -> None:
    """An OpenTelemetry-API histogram in ``ms`` is ``..._milliseconds`` with the values as
    recorded (what a Collector's Prometheus exporter shows), with ``# UNIT`` in OpenMetrics;
    unit ``1`` adds no ``_ratio``."""
    obs.setup(service_name="units", environ={})
    meter = otel_metrics.get_meter("lib")
    meter.create_histogram("lib.latency", unit="ms").record(12.5)
    meter.create_up_down_counter("lib.usage", unit="1").add(1)
    found = families(OPENMETRICS)
    latency = found["lib_latency_milliseconds"]
    assert latency.unit == "milliseconds"
    assert [s.value for s in latency.samples if s.name.endswith("_sum")] == [12.5]
    assert {s.labels["le"] for s in latency.samples if s.name.endswith("_bucket")} >= {"25.0"}
    assert "lib_usage" in found
    assert found["lib_usage"].unit == ""


def test_target_info_carries_the_resource_once() -> None:
    """The resource appears as one ``target_info`` (an info metric in OpenMetrics, a gauge
    of 1 in text), so ``service.version`` and ``deployment.environment.name`` reach
    Prometheus; no other family carries resource attributes."""
    obs.setup(service_name="svc", service_version="1.4.2", environment="prod", environ={})
    obs.counter("hits").inc()
    for accept, kind in ((None, "gauge"), (OPENMETRICS, "info")):
        found = families(accept)
        target = found["target_info" if accept is None else "target"]
        assert target.type == kind
        [sample] = target.samples
        assert sample.value == 1.0
        assert sample.labels["service_name"] == "svc"
        assert sample.labels["service_version"] == "1.4.2"
        assert sample.labels["deployment_environment_name"] == "prod"
        assert "service_version" not in found["hits"].samples[0].labels


def test_otlp_values_are_typed_and_empty_ones_left_out() -> None:
    """Over OTLP our series carry the convention's types (``http.response.status_code`` an
    int) and no empty attribute (an empty ``error.type`` means no error); the scope has the
    library's version and the schema URL."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="typed", environ={}, otlp_endpoint=endpoint)
        requests = obs.counter("typed.requests", labels=("http.response.status_code", "error.type"))
        requests.labels("200", "").inc()
        requests.labels("500", "500").inc()
        assert obs.shutdown(timeout=5).ok
        scopes = [
            sm
            for request in received.requests["/v1/metrics"]
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            if sm.scope.name == "unified_obs"
        ]
    scope = scopes[-1]
    assert (scope.scope.version, scope.schema_url) == (library_version(), SCHEMA_URL)
    [metric] = [m for m in scope.metrics if m.name == "typed.requests"]
    points = sorted((attributes(p.attributes) for p in metric.sum.data_points), key=str)
    assert points == [
        {"http.response.status_code": 200},
        {"http.response.status_code": 500, "error.type": "500"},
    ]


@pytest.mark.parametrize(
    ("machine", "arch"),
    [("x86_64", "amd64"), ("AMD64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm32"),
     ("i686", "x86"), ("ppc64le", "ppc64"), ("s390x", "s390x"), ("riscv64", "riscv64")],
)  # fmt: skip
def test_host_arch_uses_the_convention_values(machine: str, arch: str) -> None:
    """``host.arch`` is one of the convention's values where one fits."""
    assert host_arch(machine) == arch


@pytest.mark.parametrize(
    ("platform", "kind"),
    [("linux", "linux"), ("win32", "windows"), ("cygwin", "windows"), ("darwin", "darwin"),
     ("freebsd14", "freebsd"), ("sunos5", "solaris"), ("aix7", "aix")],
)  # fmt: skip
def test_os_type_uses_the_convention_values(platform: str, kind: str) -> None:
    """``os.type`` is one of the convention's values, not ``sys.platform`` as it is."""
    assert os_type(platform) == kind


def test_resource_names_the_sdk_version() -> None:
    """The resource carries ``telemetry.sdk.version`` beside its name and language."""
    from opentelemetry.sdk.version import __version__

    tel = obs.setup(service_name="sdk", environ={})
    assert tel.resource.attributes["telemetry.sdk.version"] == __version__


def test_multiprocess_scrape_has_scope_labels_and_target_info(tmp_path: Any) -> None:
    """In multiprocess mode the summed families get the same translation: our scope on
    every sample and one ``target_info`` (of the worker answering the scrape)."""
    obs.setup(service_name="workers", environ={}, metrics_multiprocess_dir=str(tmp_path))
    obs.counter("jobs.done", labels=("queue",)).labels("mail").inc(2)
    found = families()
    assert [s.labels for s in found["jobs_done"].samples if s.name == "jobs_done_total"] == [
        {"queue": "mail", **OURS}
    ]
    [target] = found["target_info"].samples
    assert target.labels["service_name"] == "workers"
