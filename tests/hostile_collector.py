"""A scripted, hostile OTLP/HTTP collector for tests (127.0.0.1, a port the OS picks).

Every request is answered by the current ``script`` (one :class:`Answer`), and its
arrival time recorded.  The answers are the ones the reliability plan lists (T-05,
T-06): any status with or without ``Retry-After``, redirects, a body of any size sent
in chunks (never held in memory), a gzip bomb, bytes that are not HTTP at all, and
no answer at all.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.served import serving

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What the collector sends back: a status, headers and ``body_bytes`` of zeros
    (gzip-compressed on the wire when ``gzip_bomb``), or ``raw`` bytes instead of HTTP."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body_bytes: int = 0
    gzip_bomb: bool = False
    raw: bytes | None = None
    hang: bool = False
    """Read the request, then never answer (until the collector stops): a blackhole."""
    delay: float = 0.0
    """Seconds to wait before answering (a slow collector)."""
    chunk_bytes: int = 0
    """With ``chunk_bytes``: a chunked body that never ends, one chunk every ``chunk_every``
    seconds (until the client hangs up or the collector stops)."""
    chunk_every: float = 0.0
    drip_head: float = 0.0
    """With ``drip_head``: the status line and an endless header, a byte every
    ``drip_head`` seconds (each read well within any socket timeout)."""


@dataclass
class Collector:
    """The collector's address, its script and what it saw."""

    endpoint: str
    script: Answer = field(default_factory=Answer)
    arrivals: list[float] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


@cache
def bomb(inflated: int) -> bytes:
    """Gzip of ``inflated`` zero bytes (256 MiB compress to about 250 kB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(inflated // len(zeros))]
    parts.append(packer.flush())
    packed = b"".join(parts)
    return packed


def _respond(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    """Send ``answer``'s status, headers and body (a client hanging up early is fine)."""
    body = bomb(answer.body_bytes) if answer.gzip_bomb else None
    handler.send_response(answer.status)
    for name, value in answer.headers:
        handler.send_header(name, value)
    if body is not None:
        handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(answer.body_bytes if body is None else len(body)))
    handler.end_headers()
    try:
        if body is not None:
            handler.wfile.write(body)
            return
        zeros = bytes(_CHUNK)
        for start in range(0, answer.body_bytes, _CHUNK):
            handler.wfile.write(zeros[: min(_CHUNK, answer.body_bytes - start)])
    except OSError:  # the client hung up once it had read enough: expected
        handler.close_connection = True


def _endless(handler: BaseHTTPRequestHandler, answer: Answer, stop: threading.Event) -> None:
    """200 with a chunked body that never ends (or drips, with ``chunk_every``)."""
    handler.send_response(answer.status)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"%x\r\n" % answer.chunk_bytes + bytes(answer.chunk_bytes) + b"\r\n"
    try:
        while not stop.wait(answer.chunk_every):
            handler.wfile.write(chunk)
            handler.wfile.flush()
    except OSError:  # the client hung up: what the test wants
        pass
    handler.close_connection = True


def _drip_head(handler: BaseHTTPRequestHandler, every: float, stop: threading.Event) -> None:
    """``HTTP/1.1 200 OK`` and ``X-Drip: xxx...`` one byte at a time, never finished."""
    head = b"HTTP/1.1 200 OK\r\nX-Drip: "
    sent = 0
    try:
        while not stop.wait(every):
            handler.wfile.write(head[sent : sent + 1] if sent < len(head) else b"x")
            handler.wfile.flush()
            sent += 1
    except OSError:  # the client gave up: what the test wants
        pass
    handler.close_connection = True


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            collector.arrivals.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = collector.script
            if answer.delay:
                collector.stopping.wait(answer.delay)
            if answer.hang:
                collector.stopping.wait(30.0)
            elif answer.drip_head:
                _drip_head(self, answer.drip_head, collector.stopping)
            elif answer.chunk_bytes:
                _endless(self, answer, collector.stopping)
            elif answer.raw is not None:
                self.wfile.write(answer.raw)
                self.close_connection = True
            else:
                _respond(self, answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer is what these tests provoke: not an error."""


@contextmanager
def hostile_collector() -> Iterator[Collector]:
    """Serve a scripted collector on loopback until the block ends."""
    server = _QuietServer(("127.0.0.1", 0), _handler(Collector("")))
    collector = Collector(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(collector)
    server.daemon_threads = True
    with serving(server):
        try:
            yield collector
        finally:
            collector.stopping.set()  # before the shutdown: ends the handlers' dripping
