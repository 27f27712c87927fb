"""Inbound W3C Trace Context (level 2) and Baggage: repeated headers, list members, limits.

The pure reading (``_http.w3c.carrier``) is checked line by line and against the
OpenTelemetry propagators; the inbound paths (gRPC metadata here, ASGI and WSGI in
``test_hostile.py``) are checked end to end on real servers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from tests.test_grpc_support import call_sync, spans_of, sync_server
from unified_obs._http.w3c import MAX_LINE, carrier, plain
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.grpc import _common, server_interceptor
from unified_obs.testing import capture

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def extracted(found: dict[str, str] | None) -> tuple[Any, dict[str, object]]:
    """The remote span context and baggage the OpenTelemetry propagators read."""
    context = TraceContextTextMapPropagator().extract(found or {})
    context = W3CBaggagePropagator().extract(found or {}, context)
    return trace.get_current_span(context).get_span_context(), dict(baggage.get_all(context))


def test_one_traceparent_passes_through() -> None:
    """A single traceparent with its tracestate reaches the propagator as it came."""
    found = carrier([("traceparent", PARENT), ("tracestate", "congo=t61,rojo=00f0")])
    assert found == {"traceparent": PARENT, "tracestate": "congo=t61,rojo=00f0"}
    assert format(extracted(found)[0].trace_id, "032x") == TRACE_ID


def test_two_traceparents_start_a_new_trace_and_drop_tracestate() -> None:
    """Two traceparent lines (different or equal), or one holding a joined list, are
    invalid: no parent, and tracestate is not read; baggage still is."""
    for lines in (
        [("traceparent", PARENT), ("traceparent", OTHER)],
        [("traceparent", PARENT), ("traceparent", PARENT)],
        [("traceparent", f"{PARENT},{OTHER}")],
    ):
        found = carrier([*lines, ("tracestate", "congo=t61"), ("baggage", "user=ann")])
        assert found == {"baggage": "user=ann"}
        span_context, items = extracted(found)
        assert not span_context.is_valid
        assert items == {"user": "ann"}


def test_repeated_tracestate_and_baggage_lines_are_combined_in_order() -> None:
    """Repeated tracestate and baggage lines are one list, in the order received; empty
    members and optional whitespace are dropped."""
    found = carrier(
        [
            ("traceparent", PARENT),
            ("tracestate", "congo=t61, ,"),
            ("baggage", "a=1"),
            ("tracestate", "\trojo=00f0"),
            ("baggage", "b=2 ,, c=3"),
        ]
    )
    assert found == {
        "traceparent": PARENT,
        "tracestate": "congo=t61,rojo=00f0",
        "baggage": "a=1,b=2,c=3",
    }
    span_context, items = extracted(found)
    assert list(span_context.trace_state.items()) == [("congo", "t61"), ("rojo", "00f0")]
    assert items == {"a": "1", "b": "2", "c": "3"}


def test_tracestate_beyond_32_members_keeps_32_whole_members() -> None:
    """40 members: those over 128 characters go first, then members from the end, so 32
    remain (the OpenTelemetry API alone would drop all 40)."""
    members = [f"k{i}=v" for i in range(38)]
    members[3] = "long3=" + "x" * 130
    members[9] = "long9=" + "y" * 130
    found = carrier([("traceparent", PARENT), ("tracestate", ",".join(members))])
    assert found is not None
    kept = found["tracestate"].split(",")
    assert len(kept) == 32
    assert not any(m.startswith("long") for m in kept)
    assert kept == [m for m in members if not m.startswith("long")][:32]
    assert len(extracted(found)[0].trace_state) == 32
    assert (
        len(extracted({"traceparent": PARENT, "tracestate": ",".join(members)})[0].trace_state) == 0
    )


def test_baggage_beyond_8192_characters_keeps_whole_members() -> None:
    """Combined baggage over 8192 characters loses whole members from the end (the API
    alone would ignore the header)."""
    lines = [("baggage", ",".join(f"k{n}{i}=" + "v" * 90 for i in range(30))) for n in range(4)]
    found = carrier(lines)
    assert found is not None
    assert len(found["baggage"]) <= 8192
    assert all("=" in member for member in found["baggage"].split(","))
    assert len(extracted(found)[1]) > 60


def test_a_line_beyond_the_limit_is_ignored_unread() -> None:
    """A line longer than MAX_LINE is skipped; the rest is still read."""
    found = carrier([("baggage", "a=" + "x" * MAX_LINE), ("baggage", "b=2")])
    assert found == {"baggage": "b=2"}
    assert carrier([("traceparent", "x" * (MAX_LINE + 1))]) is None


header_lines = st.lists(
    st.tuples(
        st.sampled_from(["traceparent", "tracestate", "baggage", "other"]),
        st.one_of(
            st.text(max_size=40),
            st.sampled_from([PARENT, OTHER, "k=v", " , ", "a=" + "x" * 300]),
        ),
    ),
    max_size=12,
)


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(lines=header_lines)
def test_any_lines_give_a_bounded_carrier_the_propagators_accept(
    lines: list[tuple[str, str]],
) -> None:
    """Whatever lines arrive: no exception, at most one traceparent taken only when it
    was alone, tracestate only with it, at most 32 tracestate members, every list within
    8192 characters, and the propagators extract without raising."""
    found = carrier(lines) or {}
    parents = [v for n, v in lines if n == "traceparent" and len(v) <= MAX_LINE]
    if "traceparent" in found:
        assert parents == [found["traceparent"]]
    else:
        assert "tracestate" not in found
    assert len(found.get("tracestate", "").split(",")) <= 32
    assert all(len(value) <= MAX_LINE for value in found.values())
    context, items = extracted(found)
    if plain(lines):  # the shortcut reads the lines as they are: it must mean the same
        assert extracted(dict(lines)) == (context, items)


def test_grpc_metadata_follows_the_same_rules() -> None:
    """On a real gRPC server, repeated tracestate and baggage entries are combined for
    the server span.  Repeated traceparent entries never reach an interceptor (grpc-core
    keeps only the last one), so that rule is checked on the metadata the interceptor
    would get."""
    lines = [("traceparent", PARENT), ("tracestate", "a=1"), ("tracestate", "b=2")]
    lines += [("baggage", "x=1"), ("baggage", "y=2")]
    with capture(handle_signals=False) as cap:
        with (
            sync_server([server_interceptor()]) as (_, target),
            grpc.insecure_channel(target) as channel,
        ):
            call_sync(channel, "UnaryUnary", b"echo", metadata=lines)
        (server,) = spans_of(cap, SpanKind.SERVER)
        assert server.parent is not None
        assert format(server.context.trace_id, "032x") == TRACE_ID
        assert list(server.context.trace_state.items()) == [("a", "1"), ("b", "2")]
        parsed = _common.extract(lines)
        assert parsed is not None
        assert dict(baggage.get_all(parsed)) == {"x": "1", "y": "2"}
        twice = _common.extract([("traceparent", PARENT), ("traceparent", OTHER)])
        assert twice is not None
        assert not trace.get_current_span(twice).get_span_context().is_valid


async def _echo_once(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(code=1000)


def _websocket_span(headers: list[tuple[bytes, bytes]]) -> Any:
    """The connection span of one websocket handshake carrying ``headers``."""
    app = ObservabilityMiddleware(Starlette(routes=[WebSocketRoute("/ws", _echo_once)]))
    scope = {"type": "websocket", "path": "/ws", "headers": headers, "query_string": b""}
    messages = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Any) -> None:
        return None

    with capture(handle_signals=False, outbound_http=False) as cap:
        asyncio.run(app(scope, receive, send))
        (span,) = cap.spans
    return span


def test_websocket_handshake_follows_the_same_rules() -> None:
    """A websocket handshake with two traceparent lines starts a new trace; one with
    repeated tracestate lines gets a parent carrying every member."""
    twice = _websocket_span([(b"traceparent", PARENT.encode()), (b"Traceparent", OTHER.encode())])
    assert twice.parent is None
    combined = _websocket_span(
        [(b"traceparent", PARENT.encode()), (b"tracestate", b"a=1"), (b"tracestate", b"b=2")]
    )
    assert format(combined.context.trace_id, "032x") == TRACE_ID
    assert list(combined.context.trace_state.items()) == [("a", "1"), ("b", "2")]
