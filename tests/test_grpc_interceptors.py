"""gRPC interceptors against a real grpcio server and client on 127.0.0.1, sync and aio,
all four call shapes: span parenting, untouched statuses, metrics, malformed metadata."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import unified_obs as obs
from tests.test_grpc_support import (
    METHODS,
    aio_pair,
    aio_server,
    attrs,
    call_aio,
    call_sync,
    spans_of,
    sync_pair,
    sync_server,
    wait_until,
)
from unified_obs import metrics
from unified_obs.grpc import aio_server_interceptor, client_interceptor, server_interceptor
from unified_obs.grpc._common import SERVER_ERROR_CODES
from unified_obs.testing import Captured, capture

Result = tuple[grpc.StatusCode, str | None, list[bytes], tuple[Any, ...]]


def assert_parented(cap: Captured, method: str, answer: list[bytes]) -> None:
    """One client and one server span for ``method``, the server's parent is the client."""
    wait_until(lambda: len(cap.spans) >= 2)
    (client,) = spans_of(cap, SpanKind.CLIENT)
    (server,) = spans_of(cap, SpanKind.SERVER)
    assert client.name == server.name == f"test.Echo/{method}"
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    assert answer[-1] == format(server.context.trace_id, "032x").encode()
    assert attrs(server)["rpc.system.name"] == "grpc"
    assert attrs(server)["rpc.method"] == f"test.Echo/{method}"
    assert attrs(server)["rpc.response.status_code"] == "OK"
    assert attrs(server)["network.peer.address"] == "127.0.0.1"
    assert attrs(client)["server.address"] == "127.0.0.1"
    assert client.status.status_code is server.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("method", METHODS)
def test_sync_spans_parent_client_to_server(method: str) -> None:
    """Sync, every call shape: the server span continues the client span's trace, and the
    handler runs with the server span current."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        code, _, answer, _ = call_sync(channel, method, b"trace")
        assert code is grpc.StatusCode.OK
        assert_parented(cap, method, answer)


@pytest.mark.asyncio
@pytest.mark.parametrize("method", METHODS)
async def test_aio_spans_parent_client_to_server(method: str) -> None:
    """grpc.aio, every call shape: the same parenting as sync."""
    with capture(handle_signals=False) as cap:
        async with aio_pair() as channel:
            code, _, answer, _ = await call_aio(channel, method, b"trace")
        assert code is grpc.StatusCode.OK
        assert_parented(cap, method, answer)


def _commands() -> list[bytes]:
    return [f"abort:{code.name}:why {code.name.lower()}".encode() for code in grpc.StatusCode]


def _check_statuses(cap: Captured, plain: list[Result], observed: list[Result]) -> None:
    assert len(plain) == len(observed) == 4 * len(grpc.StatusCode) == 68
    assert observed == plain  # codes, details, responses and trailing metadata
    codes = {result[0] for result in observed}
    assert codes == set(grpc.StatusCode)
    wait_until(lambda: len(spans_of(cap, SpanKind.SERVER)) == 68)
    for span in spans_of(cap, SpanKind.SERVER):
        name = attrs(span)["rpc.response.status_code"]
        failed = grpc.StatusCode[str(name)] in SERVER_ERROR_CODES
        assert (span.status.status_code is StatusCode.ERROR) is failed, name
        assert ("error.type" in attrs(span)) is failed, name  # NOT_FOUND did not fail


def test_sync_every_status_code_reaches_the_client_unchanged() -> None:
    """All 17 codes, their details and trailing metadata (text and binary) are the same with
    and without the interceptors, in every call shape; server spans carry the code."""
    with capture(handle_signals=False) as cap:
        with sync_server() as (_, target), grpc.insecure_channel(target) as channel:
            plain = [call_sync(channel, m, c) for m in METHODS for c in _commands()]
        with sync_pair() as channel:
            observed = [call_sync(channel, m, c) for m in METHODS for c in _commands()]
        _check_statuses(cap, plain, observed)


@pytest.mark.asyncio
async def test_aio_every_status_code_reaches_the_client_unchanged() -> None:
    """The grpc.aio twin: 17 codes x 4 shapes unchanged, spans carry the code."""
    with capture(handle_signals=False) as cap:
        async with aio_server() as (_, target), grpc.aio.insecure_channel(target) as channel:
            plain = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        async with aio_pair() as channel:
            observed = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        _check_statuses(cap, plain, observed)


@pytest.mark.asyncio
async def test_aio_server_with_plain_function_handlers_keeps_statuses() -> None:
    """grpc.aio running plain functions in its migration thread pool: all 17 codes x 4 shapes
    unchanged, and the spans still carry the code the handler set."""
    with capture(handle_signals=False) as cap:
        async with (
            aio_server(sync_handlers=True) as (_, target),
            grpc.aio.insecure_channel(target) as channel,
        ):
            plain = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        async with (
            aio_server([aio_server_interceptor()], sync_handlers=True) as (_, target),
            grpc.aio.insecure_channel(target) as channel,
        ):
            observed = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        _check_statuses(cap, plain, observed)


def _check_unknown_method(cap: Captured) -> None:
    wait_until(lambda: len(spans_of(cap, SpanKind.SERVER)) == 1)
    [span] = spans_of(cap, SpanKind.SERVER)
    assert span.name == "grpc"
    assert attrs(span)["rpc.method"] == "_OTHER"
    assert attrs(span)["rpc.method_original"] == "test.Echo/Missing"
    assert attrs(span)["rpc.response.status_code"] == "UNIMPLEMENTED"
    assert attrs(span)["error.type"] == "UNIMPLEMENTED"
    labels = {"rpc.method": "_OTHER", "rpc.response.status_code": "UNIMPLEMENTED"}
    assert _series_count("server", {**labels, "error.type": "UNIMPLEMENTED"}) == 1


def test_unknown_methods_are_observed_as_other() -> None:
    """A method the server does not have: gRPC's own UNIMPLEMENTED answer, observed with
    ``rpc.method="_OTHER"`` (span and metric) and the name as ``rpc.method_original``."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary("/test.Echo/Missing")(b"x", timeout=5)
        assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert error.value.details() == "Method not found!"
        _check_unknown_method(cap)


@pytest.mark.asyncio
async def test_aio_unknown_methods_are_observed_as_other() -> None:
    """The grpc.aio twin: UNIMPLEMENTED as gRPC answers it, observed as ``_OTHER``."""
    with capture(handle_signals=False) as cap:
        async with aio_pair() as channel:
            with pytest.raises(grpc.RpcError) as error:
                await channel.unary_unary("/test.Echo/Missing")(b"x", timeout=5)
        assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert error.value.details() == "Method not found!"
        _check_unknown_method(cap)


def test_client_log_line_is_opt_in_and_keeps_the_callers_fields() -> None:
    """``client_interceptor(log_calls=True)``: one ``grpc.client.call`` line per call with the
    client span's trace id and the caller's bound fields, even for streams that end later."""
    with capture(handle_signals=False) as cap:
        with sync_server([server_interceptor(log_calls=False)]) as (_, target):
            interceptor = client_interceptor(target=target, log_calls=True)
            channel = grpc.intercept_channel(grpc.insecure_channel(target), interceptor)
            with channel, obs.bound(order_id=7):
                results = [call_sync(channel, m, b"echo") for m in METHODS]
        assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4
        wait_until(lambda: len([r for r in cap.logs if r["event"] == "grpc.client.call"]) == 4)
        lines = [r for r in cap.logs if r["event"] == "grpc.client.call"]
        clients = {format(s.context.trace_id, "032x") for s in spans_of(cap, SpanKind.CLIENT)}
        assert {line["trace_id"] for line in lines} == clients
        assert all(line["order_id"] == 7 for line in lines)
        assert sorted(line["rpc.method"] for line in lines) == sorted(
            f"test.Echo/{m}" for m in METHODS
        )


def _series_count(side: str, wanted: dict[str, str]) -> float:
    """Calls counted by ``rpc.{side}.call.duration`` in the series matching ``wanted``."""
    [instrument] = [i for i in metrics.instruments() if i.name == f"rpc.{side}.call.duration"]
    names = instrument.definition.labels
    return sum(
        float(bound.value())
        for key, bound in instrument.series()
        if wanted.items() <= dict(zip(names, key, strict=True)).items()
    )


def _duration_count(side: str, method: str, code: str, error: str = "") -> float:
    labels = {
        "rpc.system.name": "grpc",
        "rpc.method": f"test.Echo/{method}",
        "rpc.response.status_code": code,
        "error.type": error,
    }
    return _series_count(side, labels)


def test_sync_metrics_have_semconv_names_attributes_and_exemplars() -> None:
    """``rpc.server.call.duration`` / ``rpc.client.call.duration`` count each call under its
    method, status code and error type (only for calls that failed on that side), the
    client's also under the server it called; OpenMetrics shows the trace id as an
    exemplar."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        for method in METHODS:
            before = _duration_count("server", method, "NOT_FOUND")
            call_sync(channel, method, b"echo")
            call_sync(channel, method, b"abort:NOT_FOUND:x")
            call_sync(channel, method, b"raise")
            assert _duration_count("server", method, "OK") >= 1
            assert _duration_count("server", method, "NOT_FOUND") == before + 1  # no error.type
            assert _duration_count("server", method, "UNKNOWN", "ValueError") >= 1
            assert _duration_count("client", method, "UNKNOWN", "UNKNOWN") >= 1
        _, _, body = metrics.render("application/openmetrics-text; version=1.0.0", None)
        text = body.decode()
        assert re.search(
            r'rpc_client_call_duration_seconds_count\{[^}]*server_address="127.0.0.1",server_port="\d+"',
            text,
        )
        assert "rpc_server_call_duration_seconds_bucket{" in text
        assert 'rpc_method="test.Echo/UnaryUnary"' in text
        exemplar = r'_bucket\{.*# \{span_id="[0-9a-f]{16}",trace_id="([0-9a-f]{32})"\}'
        exemplars = re.findall("rpc_server_call_duration_seconds" + exemplar, text)
        traces = {format(s.context.trace_id, "032x") for s in spans_of(cap, SpanKind.SERVER)}
        assert exemplars
        assert set(exemplars) <= traces


@pytest.mark.asyncio
async def test_aio_metrics_have_semconv_names_and_attributes() -> None:
    """grpc.aio calls land in the same histograms with the same attributes."""
    with capture(handle_signals=False):
        async with aio_pair() as channel:
            for method in METHODS:
                before = _duration_count("client", method, "OK")
                await call_aio(channel, method, b"echo")
                await call_aio(channel, method, b"abort:PERMISSION_DENIED:x")
                assert _duration_count("client", method, "OK") == before + 1
                assert _duration_count("server", method, "OK") >= 1
                assert _duration_count("server", method, "PERMISSION_DENIED") >= 1
                denied = ("PERMISSION_DENIED", "PERMISSION_DENIED")
                assert _duration_count("client", method, *denied) >= 1  # a client error


_MALFORMED: list[list[tuple[str, Any]]] = [
    [("traceparent", "garbage")],
    [("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01")],
    [("traceparent", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01"), ("tracestate", "%%%,,=")],
    [("traceparent", "00-" + "z" * 32 + "-" + "b" * 16 + "-zz")],
    [("traceparent", "x" * 4000), ("baggage", "=;=;%%;" * 100)],
    [("traceparent", ""), ("traceparent", "garbage"), ("baggage", "k=v" * 500)],
    [("traceparent-bin", b"\x00\xff\x01"), ("baggage-bin", b"\xff")],
]


@pytest.mark.parametrize("metadata", _MALFORMED)
def test_sync_malformed_traceparent_never_raises(metadata: list[tuple[str, Any]]) -> None:
    """Malformed, empty, oversized and binary trace metadata: the call succeeds and the
    server span starts a fresh trace."""
    with capture(handle_signals=False) as cap:
        with (
            sync_server([server_interceptor()]) as (_, target),
            grpc.insecure_channel(target) as channel,
        ):
            results = [call_sync(channel, m, b"trace", metadata=metadata) for m in METHODS]
        assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4
        servers = spans_of(cap, SpanKind.SERVER)
        assert len(servers) == 4
        assert all(span.parent is None for span in servers)


@pytest.mark.asyncio
async def test_aio_malformed_traceparent_never_raises() -> None:
    """grpc.aio: every malformed variant, every shape, succeeds with a root server span."""
    with capture(handle_signals=False) as cap:
        async with (
            aio_server([aio_server_interceptor()]) as (_, target),
            grpc.aio.insecure_channel(target) as channel,
        ):
            for metadata in _MALFORMED:
                for method in METHODS:
                    result = await call_aio(channel, method, b"echo", metadata=metadata)
                    assert result[0] is grpc.StatusCode.OK
        servers = spans_of(cap, SpanKind.SERVER)
        assert len(servers) == 4 * len(_MALFORMED)
        assert all(span.parent is None for span in servers)
