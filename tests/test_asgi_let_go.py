"""The ASGI middleware lets go of the server's scope, ``send`` and ``receive`` once the app
has returned with its response complete, while the request still waits for the loop's
next turn to be recorded (a caller that never lets its loop turn leaves thousands
waiting)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from unified_obs._http import next_turn
from unified_obs.asgi import Message, ObservabilityMiddleware
from unified_obs.testing import Captured, capture


class _Scope(dict[str, Any]):
    """A scope a weak reference can watch (a plain dict cannot be weakly referenced)."""


class _Server:
    """The server's ``receive`` and ``send``, as objects a weak reference can watch."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))


def _scope() -> _Scope:
    return _Scope(
        type="http", method="GET", path="/items/1", headers=[(b"host", b"svc")],
        query_string=b"", client=("127.0.0.1", 5000), server=("127.0.0.1", 80),
    )  # fmt: skip


@pytest.fixture
def captured() -> Iterator[Captured]:
    with capture() as tel:
        yield tel


@pytest.mark.asyncio
async def test_a_request_waiting_to_be_recorded_holds_none_of_the_servers_objects(
    captured: Captured,
) -> None:
    """After the app returned its complete response, the request waiting for the next
    turn keeps neither the scope nor the server's callables alive; it is still recorded
    at the turn."""
    late: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        late.append((receive, send))

    middleware = ObservabilityMiddleware(app)
    scope, server = _scope(), _Server()
    watched: list[weakref.ref[Any]] = [weakref.ref(scope), weakref.ref(server)]
    await middleware(scope, server.receive, server.send)
    assert len(server.sent) == 2
    del scope, server
    gc.collect()
    assert next_turn._pending  # not recorded yet: the loop has not turned
    assert [ref() for ref in watched] == [None, None]
    await asyncio.sleep(0)
    spans = captured.spans
    assert len(spans) == 1
    assert spans[0].attributes is not None
    assert spans[0].attributes["url.path"] == "/items/1"
    assert spans[0].attributes["http.response.status_code"] == 200


@pytest.mark.asyncio
async def test_receive_and_send_kept_past_the_app_behave_like_a_finished_exchange(
    captured: Captured,
) -> None:
    """Once the app returned its complete response, a ``receive`` it kept answers a
    disconnect and a ``send`` raises ``RuntimeError``, as a server does then; neither
    reaches the server."""
    kept: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        kept.extend((receive, send))

    server = _Server()
    await ObservabilityMiddleware(app)(_scope(), server.receive, server.send)
    receive, send = kept
    assert await receive() == {"type": "http.disconnect"}
    with pytest.raises(RuntimeError, match="after the response completed"):
        await send({"type": "http.response.body", "body": b"late"})
    assert len(server.sent) == 2
