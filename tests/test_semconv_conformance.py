"""Conformance with semantic conventions v1.44.0 and the OpenTelemetry -> Prometheus rules.

One scenario drives real calls (gRPC sync and aio through real servers, an
OpenTelemetry-API instrument, a logged exception) with every signal exported over OTLP/HTTP
to a real receiver, and scrapes ``/metrics`` in both formats.  The tables below are the
expectations, taken from the convention documents (``rpc/grpc.md``, ``rpc/rpc-metrics.md``,
``http/http-metrics.md``, ``exceptions/exceptions-logs.md``, ``resource/``) and the
specification's ``compatibility/prometheus_and_openmetrics.md``: names, kinds, attribute
keys and value types, units and buckets; each test checks one row against what arrived.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
import pytest
from opentelemetry import metrics as otel_metrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import unified_obs as obs
from tests.otlp_receiver import Received, attributes, otlp_receiver
from tests.test_grpc_support import aio_pair, call_aio, call_sync, sync_pair
from unified_obs import metrics
from unified_obs._semconv import SCHEMA_URL, library_version
from unified_obs.metrics._names import prom_label

OPENMETRICS: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"
SEMCONV_BUCKETS: Final = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
SERVER, CLIENT = 2, 3  # OTLP span kinds
UNSET, ERROR = 0, 2  # OTLP status codes
OURS: Final = ("unified_obs", library_version(), SCHEMA_URL)

# --- the tables -----------------------------------------------------------------------


@dataclass(frozen=True)
class SpanRow:
    """A span the convention describes: how to find it, then what it must carry."""

    case: str
    kind: int
    name: str
    where: Mapping[str, object]  # attribute values that pick the span out
    required: Mapping[str, type]  # attribute -> OTLP value type
    absent: frozenset[str] = frozenset()
    status: int = UNSET
    scope: tuple[str, str, str] = ("unified_obs.grpc", library_version(), SCHEMA_URL)


_GRPC_COMMON: Final = {"rpc.system.name": str, "rpc.method": str, "rpc.response.status_code": str}
_GRPC_SERVER: Final = {**_GRPC_COMMON, "network.peer.address": str, "network.peer.port": int}
_GRPC_CLIENT: Final = {**_GRPC_COMMON, "server.address": str, "server.port": int}
_NEVER: Final = frozenset({"rpc.status_code", "rpc.grpc.status_code", "rpc.system", "rpc.service"})

SPANS: Final = [
    SpanRow(
        "grpc server OK",
        SERVER,
        "test.Echo/UnaryUnary",
        {"rpc.method": "test.Echo/UnaryUnary", "rpc.response.status_code": "OK"},
        _GRPC_SERVER,
        _NEVER | {"error.type"},
    ),
    SpanRow(
        "grpc server NOT_FOUND is no server error",
        SERVER,
        "test.Echo/UnaryUnary",
        {"rpc.method": "test.Echo/UnaryUnary", "rpc.response.status_code": "NOT_FOUND"},
        _GRPC_SERVER,
        _NEVER | {"error.type"},
    ),
    SpanRow(
        "grpc server UNAVAILABLE",
        SERVER,
        "test.Echo/UnaryUnary",
        {"rpc.method": "test.Echo/UnaryUnary", "rpc.response.status_code": "UNAVAILABLE"},
        {**_GRPC_SERVER, "error.type": str},
        _NEVER,
        ERROR,
    ),
    SpanRow(
        "grpc server unknown method",
        SERVER,
        "grpc",
        {"rpc.method": "_OTHER"},
        {**_GRPC_SERVER, "rpc.method_original": str, "error.type": str},
        _NEVER,
        ERROR,
    ),
    SpanRow(
        "grpc server aio stream",
        SERVER,
        "test.Echo/StreamStream",
        {"rpc.method": "test.Echo/StreamStream", "rpc.response.status_code": "OK"},
        _GRPC_SERVER,
        _NEVER | {"error.type"},
    ),
    SpanRow(
        "grpc client OK",
        CLIENT,
        "test.Echo/UnaryUnary",
        {"rpc.method": "test.Echo/UnaryUnary", "rpc.response.status_code": "OK"},
        _GRPC_CLIENT,
        _NEVER | {"error.type"},
    ),
    SpanRow(
        "grpc client NOT_FOUND is a client error",
        CLIENT,
        "test.Echo/UnaryUnary",
        {"rpc.method": "test.Echo/UnaryUnary", "rpc.response.status_code": "NOT_FOUND"},
        {**_GRPC_CLIENT, "error.type": str},
        _NEVER,
        ERROR,
    ),
]


@dataclass(frozen=True)
class MetricRow:
    """A metric the convention describes, over OTLP and on ``/metrics``."""

    name: str
    kind: str  # the OTLP data field: histogram | sum | gauge
    unit: str
    required: Mapping[str, type]
    optional: Mapping[str, type] = field(default_factory=dict)
    buckets: list[float] | None = None
    scope: tuple[str, str, str] = OURS
    prom_name: str = ""
    prom_type: str = ""
    prom_unit: str = ""


METRICS: Final = [
    MetricRow(
        "rpc.server.call.duration",
        "histogram",
        "s",
        _GRPC_COMMON,
        {"error.type": str},
        SEMCONV_BUCKETS,
        prom_name="rpc_server_call_duration_seconds",
        prom_type="histogram",
        prom_unit="seconds",
    ),
    MetricRow(
        "rpc.client.call.duration",
        "histogram",
        "s",
        {**_GRPC_COMMON, "server.address": str, "server.port": int},
        {"error.type": str},
        SEMCONV_BUCKETS,
        prom_name="rpc_client_call_duration_seconds",
        prom_type="histogram",
        prom_unit="seconds",
    ),
    MetricRow(  # recorded through the OpenTelemetry API by "another instrumentation"
        "http.client.request.duration",
        "histogram",
        "s",
        {
            "http.request.method": str,
            "http.response.status_code": int,
            "server.address": str,
            "server.port": int,
        },
        buckets=SEMCONV_BUCKETS,
        scope=("conformance.lib", "9.9", ""),
        prom_name="http_client_request_duration_seconds",
        prom_type="histogram",
        prom_unit="seconds",
    ),
    MetricRow(  # an OpenTelemetry-API counter in milliseconds: named, never rescaled
        "lib.work.time",
        "sum",
        "ms",
        {"flag": bool},
        scope=("conformance.lib", "9.9", ""),
        prom_name="lib_work_time_milliseconds",
        prom_type="counter",
        prom_unit="milliseconds",
    ),
]

RESOURCE: Final = {
    "service.name": str,
    "service.version": str,
    "service.instance.id": str,
    "deployment.environment.name": str,
    "telemetry.sdk.name": str,
    "telemetry.sdk.language": str,
    "telemetry.sdk.version": str,
    "host.name": str,
    "host.arch": str,
    "os.type": str,
    "process.pid": int,
    "process.runtime.name": str,
    "process.runtime.version": str,
}
HOST_ARCHES: Final = {"amd64", "arm32", "arm64", "ia64", "ppc32", "ppc64", "s390x", "x86"}
OS_TYPES: Final = {"windows", "linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonflybsd",
                   "hpux", "aix", "solaris", "zos"}  # fmt: skip
EXCEPTION_LOG: Final = {
    "exception.type": str,
    "exception.message": str,
    "exception.stacktrace": str,
}

# --- the scenario ------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """What the scenario's calls produced, as plain data."""

    spans: list[tuple[tuple[str, str, str], Any]]
    metrics: list[tuple[tuple[str, str, str], Any]]
    logs: list[tuple[tuple[str, str, str], Any]]
    resource: dict[str, Any]
    scrapes: dict[str, dict[str, Any]]


def _scoped(received: Received, signal: str, items: str) -> list[Any]:
    """((scope name, version, schema URL), item) for every item of ``signal`` received."""
    found = []
    scopes = f"scope_{signal}"
    for request in received.requests[f"/v1/{'traces' if signal == 'spans' else signal}"]:
        for outer in getattr(request, f"resource_{signal}"):
            for inner in getattr(outer, scopes):
                scope = (inner.scope.name, inner.scope.version, inner.schema_url)
                found += [(scope, item) for item in getattr(inner, items)]
    return found


async def _aio_calls() -> None:
    async with aio_pair() as channel:
        await call_aio(channel, "StreamStream", b"echo")
        await call_aio(channel, "UnaryUnary", b"abort:NOT_FOUND:x")


def _record() -> None:
    with sync_pair() as channel:
        for command in (b"echo", b"abort:NOT_FOUND:x", b"abort:UNAVAILABLE:x"):
            call_sync(channel, "UnaryUnary", command)
        with pytest.raises(grpc.RpcError):
            channel.unary_unary("/test.Echo/Missing")(b"x", timeout=5)
    asyncio.run(_aio_calls())
    meter = otel_metrics.get_meter("conformance.lib", "9.9")
    client = meter.create_histogram(
        "http.client.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=SEMCONV_BUCKETS,
    )
    client.record(
        0.1,
        {
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "server.address": "example.com",
            "server.port": 443,
        },
    )
    meter.create_counter("lib.work.time", unit="ms").add(12.5, {"flag": True})
    try:
        raise ValueError("boom")
    except ValueError:
        obs.get_logger("conformance").exception("it failed")


def _families(accept: str | None) -> dict[str, Any]:
    body = metrics.render(accept, None)[2].decode()
    parsed = parse_om(body) if accept else parse_text(body)  # type: ignore[no-untyped-call]
    return {family.name: family for family in parsed}


@functools.cache
def observed() -> Observed:
    """Run the scenario once; every test reads the same result."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="conformance",
            service_version="1.2.3",
            environment="test",
            environ={},
            otlp_endpoint=endpoint,
        )
        _record()
        scrapes = {"text": _families(None), "openmetrics": _families(OPENMETRICS)}
        assert obs.shutdown(timeout=10).ok
    [resource_spans, *_] = received.requests["/v1/traces"][0].resource_spans
    return Observed(
        _scoped(received, "spans", "spans"),
        _scoped(received, "metrics", "metrics"),
        _scoped(received, "logs", "log_records"),
        attributes(resource_spans.resource.attributes),
        scrapes,
    )


# --- the checks --------------------------------------------------------------------------


def _types(found: dict[str, Any], wanted: Mapping[str, type]) -> dict[str, str]:
    """Wanted keys that are missing or of another type -> what was found instead."""
    return {
        key: type(found[key]).__name__ if key in found else "missing"
        for key, kind in wanted.items()
        if key not in found or type(found[key]) is not kind
    }


@pytest.mark.parametrize("row", SPANS, ids=lambda row: row.case)
def test_span_matches_the_convention(row: SpanRow) -> None:
    """Each span the convention describes arrives over OTLP with its kind, name, scope
    (version and schema URL), the required attributes in their types, none of the
    attributes the released conventions do not have, and its status."""
    candidates = [
        (scope, span)
        for scope, span in observed().spans
        if span.kind == row.kind
        and row.where.items() <= attributes(span.attributes).items()
        and scope[0] == row.scope[0]
    ]
    assert candidates, f"no span for {row.case}"
    for scope, span in candidates:
        found = attributes(span.attributes)
        assert (span.name, scope) == (row.name, row.scope)
        assert _types(found, row.required) == {}
        assert sorted(row.absent & found.keys()) == []
        assert span.status.code == row.status


@pytest.mark.parametrize("row", METRICS, ids=lambda row: row.name)
def test_otlp_metric_matches_the_convention(row: MetricRow) -> None:
    """Each metric arrives over OTLP under its scope with its kind, unit and buckets; every
    point carries the required attributes in the convention's types and nothing beyond the
    optional ones (no empty ``error.type`` on success)."""
    found = [(scope, m) for scope, m in observed().metrics if m.name == row.name]
    assert found, f"no metric {row.name}"
    scope, metric = found[-1]
    assert scope == row.scope
    assert (metric.WhichOneof("data"), metric.unit) == (row.kind, row.unit)
    points = list(getattr(metric, row.kind).data_points)
    assert points
    for point in points:
        values = attributes(point.attributes)
        assert _types(values, row.required) == {}
        extra = {k: v for k, v in values.items() if k not in row.required}
        assert _types(extra, {k: row.optional.get(k, type(None)) for k in extra}) == {}
        assert all(value != "" for value in values.values())
        if row.buckets is not None:
            assert list(point.explicit_bounds) == row.buckets


@pytest.mark.parametrize("exposition", ["text", "openmetrics"])
@pytest.mark.parametrize("row", METRICS, ids=lambda row: row.name)
def test_prometheus_family_matches_the_translation(row: MetricRow, exposition: str) -> None:
    """The same metric on ``/metrics``: the specification's name, type and unit, a label per
    attribute (names translated), the scope as ``otel_scope_name``/``otel_scope_version``,
    and the convention's buckets as ``le``."""
    family = observed().scrapes[exposition][row.prom_name]
    assert family.type == row.prom_type
    if exposition == "openmetrics":
        assert family.unit == row.prom_unit
    labels = {prom_label(key) for key in row.required} | {"otel_scope_name", "otel_scope_version"}
    samples = [s for s in family.samples if s.name.endswith(("_count", "_total"))]
    assert samples
    for sample in samples:
        assert labels <= sample.labels.keys()
        assert (sample.labels["otel_scope_name"], sample.labels["otel_scope_version"]) == row.scope[
            :2
        ]
    if row.buckets is not None:
        bounds = {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")}
        assert bounds == {*row.buckets, float("inf")}


def test_resource_matches_the_convention() -> None:
    """The resource carries the service, telemetry SDK, host, OS and process attributes in
    their types, ``host.arch`` and ``os.type`` from the convention's values; on ``/metrics``
    it is the one ``target_info``."""
    resource = observed().resource
    assert _types(resource, RESOURCE) == {}
    assert resource["host.arch"] in HOST_ARCHES
    assert resource["os.type"] in OS_TYPES
    for exposition, name in (("text", "target_info"), ("openmetrics", "target")):
        [target] = observed().scrapes[exposition][name].samples
        assert target.labels["service_version"] == "1.2.3"
        assert target.labels["deployment_environment_name"] == "test"


def test_exception_log_record_matches_the_convention() -> None:
    """A logged exception arrives over OTLP with ``exception.type``, ``exception.message``
    and ``exception.stacktrace`` as strings (not one JSON attribute), under the library's
    scope with its version and schema URL."""
    records = [
        (scope, record)
        for scope, record in observed().logs
        if record.body.string_value == "it failed"
    ]
    assert records
    scope, record = records[0]
    found = attributes(record.attributes)
    assert scope == OURS
    assert _types(found, EXCEPTION_LOG) == {}
    assert (found["exception.type"], found["exception.message"]) == ("ValueError", "boom")
    assert "ValueError: boom" in found["exception.stacktrace"]
    assert "exception" not in found
