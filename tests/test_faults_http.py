"""HTTP fault injection: the ASGI and WSGI wrappers the middleware puts in front of the app
while the process is armed; aborts answer the rule's status, paths and headers match."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from unified_obs.resilience import faults
from unified_obs.resilience._fault_http import BODY, faulty_asgi, faulty_wsgi
from unified_obs.resilience.faults import HEADER_ABORT, FaultRule


@pytest.fixture(autouse=True)
def _no_faults() -> Iterator[None]:
    faults.reset()
    yield
    faults.reset()


async def ok_asgi(scope: Any, receive: Any, send: Any) -> None:
    """200 "ok"."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def ok_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """200 "ok"."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _asgi_get(path: str, **headers: str) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=faulty_asgi(ok_asgi))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(get())


def _wsgi_get(path: str, **headers: str) -> httpx.Response:
    transport = httpx.WSGITransport(app=validator(faulty_wsgi(ok_wsgi)))
    with httpx.Client(transport=transport, base_url="http://test") as client:
        return client.get(path, headers=headers)


GETS = {"asgi": _asgi_get, "wsgi": _wsgi_get}


@pytest.mark.parametrize("server", GETS)
def test_abort_answers_the_status_on_matching_paths_only(server: str) -> None:
    """A 100 % abort on ``/orders*`` answers 503 there and leaves ``/users`` alone."""
    faults.configure(FaultRule(kind="abort", percentage=100, status=503, routes=("/orders*",)))
    faults.arm(True)
    aborted = GETS[server]("/orders/42")
    assert aborted.status_code == 503
    assert aborted.content == BODY
    assert GETS[server]("/users/1").status_code == 200


@pytest.mark.parametrize("server", GETS)
def test_nothing_happens_unarmed_whatever_the_headers_ask(server: str) -> None:
    """Not armed, a request asking for an abort by header gets the app's answer."""
    faults.configure(FaultRule(kind="abort", percentage=100), header_control=True)
    assert GETS[server]("/x", **{HEADER_ABORT: "500"}).status_code == 200


@pytest.mark.parametrize("server", GETS)
def test_header_controlled_abort_uses_the_requested_status(server: str) -> None:
    """With header control, the header picks the status; without it, nothing fires."""
    faults.configure(FaultRule(kind="abort", percentage=100), header_control=True)
    faults.arm(True)
    assert GETS[server]("/x", **{HEADER_ABORT: "429"}).status_code == 429
    assert GETS[server]("/x").status_code == 200


@pytest.mark.parametrize("server", GETS)
def test_delay_then_the_app_answers(server: str) -> None:
    """A delay rule lets the app answer afterwards, and gives its slot back."""
    faults.configure(FaultRule(kind="delay", percentage=100, delay=0.001))
    faults.arm(True)
    assert GETS[server]("/x").text == "ok"
    assert faults.injector().active == 0


def test_the_middleware_hears_of_each_injected_fault() -> None:
    """``on_fault`` is called once per injected fault with its kind (for the access line),
    and not for requests left alone."""
    faults.configure(FaultRule(kind="abort", percentage=100, status=503, routes=("/orders*",)))
    faults.arm(True)
    heard: list[str] = []
    app = faulty_wsgi(ok_wsgi, lambda fault: heard.append(fault.kind))
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://test") as client:
        assert client.get("/orders/1").status_code == 503
        assert client.get("/users/1").status_code == 200
    assert heard == ["abort"]
