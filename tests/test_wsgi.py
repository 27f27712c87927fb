"""WSGI middleware specifics: late-closed iterables, wsgi.file_wrapper, errors while
streaming, and 16 server threads with no cross-talk between requests."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import FileWrapper

import httpx
import pytest
from opentelemetry.trace import StatusCode

import unified_obs as obs
from tests.served import serving
from unified_obs.testing import Captured, capture
from unified_obs.wsgi import ObservabilityMiddleware


def _environ(path: str = "/", **extra: Any) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    environ.update(extra)
    return environ


class _Started:
    """A ``start_response`` that remembers what it was given."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return lambda data: None


class _SlowBody:
    """A response iterable yielding slowly and recording when it was closed."""

    def __init__(self, chunks: int, delay: float) -> None:
        self.chunks, self.delay, self.closed = chunks, delay, False

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            time.sleep(self.delay)
            yield b"x"

    def close(self) -> None:
        self.closed = True


def _access(cap: Captured) -> list[dict[str, Any]]:
    return [r for r in cap.logs if r.get("logger") == "unified_obs.access"]


def _duration(span: Any) -> float:
    return float(span.end_time - span.start_time) / 1e9


def test_span_ends_when_the_body_is_exhausted_and_close_is_forwarded() -> None:
    """A slow generator body is timed to its last chunk; close() reaches the app's iterable."""
    body = _SlowBody(chunks=4, delay=0.05)

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    with capture() as cap:
        result = ObservabilityMiddleware(app)(_environ("/slow"), _Started())
        assert len(cap.spans) == 0  # nothing ends before the body is sent
        assert b"".join(result) == b"xxxx"
        span = cap.spans[0]
        getattr(result, "close")()  # noqa: B009 - the server closes late
        line = _access(cap)[0]
    assert body.closed
    assert _duration(span) >= 0.2
    assert line["bytes"] == 4
    assert "client_disconnected" not in line


@pytest.mark.parametrize("kind", ["iterable", "list"])
@pytest.mark.parametrize("started", [True, False], ids=["after-a-chunk", "before-iterating"])
def test_early_close_records_a_client_disconnect(kind: str, started: bool) -> None:
    """A server closing the body before it is exhausted (even before iterating it) ends
    the request as cut short, for app iterables and for plain list bodies alike."""
    body = _SlowBody(chunks=5, delay=0)

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return body if kind == "iterable" else [b"a", b"b", b"c"]

    with capture() as cap:
        result = ObservabilityMiddleware(app)(_environ(), _Started())
        if started:
            next(iter(result))
        assert len(cap.spans) == 0
        getattr(result, "close")()  # noqa: B009
        span, line = cap.spans[0], _access(cap)[0]
    assert body.closed is (kind == "iterable")
    assert (span.attributes or {})["unified_obs.client_disconnected"] is True
    assert line["client_disconnected"] is True


def test_list_body_ends_when_exhausted_and_counts_its_bytes() -> None:
    """A plain list body ends the request once the server has taken its last chunk, not
    before; close() afterwards changes nothing."""

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b"ab", b"cde"]

    with capture() as cap:
        result = ObservabilityMiddleware(app)(_environ(), _Started())
        chunks = iter(result)
        assert next(chunks) == b"ab"
        assert next(chunks) == b"cde"
        assert len(cap.spans) == 0  # the server has not asked past the last chunk yet
        assert list(chunks) == []
        assert len(cap.spans) == 1
        getattr(result, "close")()  # noqa: B009
        spans, lines = list(cap.spans), _access(cap)
    assert len(spans) == 1
    assert len(lines) == 1
    assert lines[0]["bytes"] == 5
    assert "client_disconnected" not in lines[0]


@pytest.mark.parametrize(
    ("status", "code"),
    [("200 OK", 200), ("404 Not Found", 404), ("200 Fine", 200), ("299 Custom", 299)],
)
def test_status_lines_known_and_unusual_give_their_code(status: str, code: int) -> None:
    """The usual status lines and ones with an unusual phrase or code record the same
    status code on the span and the access line."""

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response(status, [])
        return [b"ok"]

    with capture() as cap:
        result = ObservabilityMiddleware(app)(_environ(), _Started())
        assert list(result) == [b"ok"]
        spans, lines = list(cap.spans), _access(cap)
    assert (spans[0].attributes or {})["http.response.status_code"] == code
    assert lines[0]["status"] == code


def test_file_wrapper_is_passed_through_and_ends_on_close() -> None:
    """wsgi.file_wrapper responses reach the server unwrapped (sendfile still works)."""

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: Any = environ["wsgi.file_wrapper"]
        body: Iterable[bytes] = wrapper(io.BytesIO(b"payload"), 4)
        return body

    with capture() as cap:
        environ = _environ()
        environ["wsgi.file_wrapper"] = FileWrapper
        result = ObservabilityMiddleware(app)(environ, _Started())
        assert isinstance(result, FileWrapper)
        assert b"".join(result) == b"payload"
        assert len(cap.spans) == 0
        getattr(result, "close")()  # noqa: B009
        spans = list(cap.spans)
    assert len(spans) == 1
    assert (spans[0].attributes or {})["http.response.status_code"] == 200


def test_errors_while_streaming_are_recorded_and_reraised() -> None:
    """An exception raised by the body iterator is recorded once and reaches the server."""

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise ValueError("mid-stream")

    with capture() as cap:
        result = iter(ObservabilityMiddleware(app)(_environ(), _Started()))
        assert next(result) == b"first"
        with pytest.raises(ValueError, match="mid-stream"):
            next(result)
        span = cap.spans[0]
        errors = [r for r in cap.logs if r.get("exception")]
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ValueError"
    assert len(errors) == 1


def test_response_headers_get_the_request_id_and_opt_in_trace_headers() -> None:
    """start_response receives X-Request-ID, traceresponse and Server-Timing."""

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return []

    started = _Started()
    with capture() as cap:
        middleware = ObservabilityMiddleware(app, traceresponse=True, server_timing=True)
        list(middleware(_environ(HTTP_X_REQUEST_ID="r-1"), started))
        span = cap.spans[0]
    headers = dict(started.headers)
    assert headers["x-request-id"] == "r-1"
    assert headers["traceresponse"].split("-")[2] == format(span.context.span_id, "016x")
    assert "app;dur=" in headers["server-timing"]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_sixteen_threads_show_no_cross_talk() -> None:
    """16 concurrent client threads against a threading WSGI server: every response's
    request id, its log lines and its span belong to the same request."""

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        marker = environ["PATH_INFO"].rsplit("/", 1)[-1]
        time.sleep(random.random() / 200)
        obs.get_logger("app").info("work", marker=marker)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [marker.encode()]

    with capture(outbound_http=False) as cap:  # the server's spans only, not the client's
        server = make_server(
            "127.0.0.1", 0, ObservabilityMiddleware(app), _ThreadingServer, handler_class=_Quiet
        )
        with (
            serving(server) as base,
            httpx.Client(base_url=base) as client,
            ThreadPoolExecutor(16) as pool,
        ):
            answers = list(
                pool.map(
                    lambda n: client.get(f"/work/{n}", headers={"x-request-id": f"id-{n}"}),
                    range(320),
                )
            )
        work = [r for r in cap.logs if r.get("event") == "work"]
        spans = {format(s.context.span_id, "016x"): s for s in cap.spans}
    assert [a.headers["x-request-id"] for a in answers] == [f"id-{n}" for n in range(320)]
    assert len(work) == 320
    assert len(spans) == 320
    for line in work:
        assert line["request_id"] == f"id-{line['marker']}"
        assert (spans[line["span_id"]].attributes or {})["url.path"] == f"/work/{line['marker']}"
