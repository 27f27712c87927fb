"""The HTTP session of the OTLP/HTTP exporters: fork-safe, and a collector cannot hurt us.

A pooled keep-alive connection opened by the parent must never be reused by a forked
child (gunicorn/uvicorn workers): both would write to one TCP stream.  The session
notices it runs in a new process and drops the inherited pools before the next request.

Whatever a collector answers, the process pays a bounded price (OTLP specification,
"Response size limits"): the body is streamed and read up to ``MAX_RESPONSE_BYTES``
*after* decompression (urllib3 inflates at most one chunk per read, so a gzip bomb never
expands in memory), and the read stops when the attempt's ``timeout`` is spent.  A body
over the cap, a redirect (OTLP has none; following one would send telemetry elsewhere)
or an answer still incomplete at the attempt's deadline (dripped headers or body) raises
:class:`CollectorResponseError`, which the exporter reports as a failed, non-retried
export (counted in the self-metrics).
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from typing import Any, Final

import requests

__all__ = ["MAX_RESPONSE_BYTES", "CollectorResponseError", "ForkSafeSession"]

MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
"""The response size the OTLP specification recommends as the client's limit."""
_CHUNK: Final = 64 * 1024
_GRACE: Final = 0.1
"""Seconds past the deadline before an attempt is abandoned, so that ``requests``' own
read timeout (at the deadline) reports first, as the retryable error it is."""


class CollectorResponseError(Exception):
    """The collector's answer was refused (too large, a redirect, too slow): not retried."""


class ForkSafeSession(requests.Session):
    """A ``requests.Session`` that starts with fresh connection pools in a forked child
    and reads at most ``max_response_bytes`` of any answer within the attempt's timeout."""

    def __init__(self, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self._pid = os.getpid()
        self.max_response_bytes = max_response_bytes
        self._hanging: threading.Thread | None = None

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request (no redirects, body streamed) and read its answer within bounds.

        With a ``timeout``, the whole attempt -- connecting, the status line, the
        headers, the body -- gets that long: it runs on a helper thread (in this
        context, so the exporter's suppression of instrumentation holds) that is
        abandoned at the deadline.  ``requests`` bounds each socket read, not the
        attempt, so a collector dripping its headers a byte at a time could otherwise
        hold an export forever.  While an abandoned attempt still hangs, the next one
        fails at once: at most one thread and one socket wait on a hostile collector."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            for adapter in self.adapters.values():
                adapter.close()
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, (int, float)):
            return self._attempt(args, kwargs, None)
        if self._hanging is not None and self._hanging.is_alive():
            raise CollectorResponseError("the previous attempt still waits for the collector")
        return self._bounded(args, kwargs, time.monotonic() + timeout)

    def _bounded(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float
    ) -> requests.Response:
        outcome: list[requests.Response | BaseException] = []

        def attempt() -> None:
            try:
                outcome.append(self._attempt(args, kwargs, deadline))
            except BaseException as error:  # handed to the caller below
                outcome.append(error)

        worker = threading.Thread(
            target=contextvars.copy_context().run,
            args=(attempt,),
            name="unified_obs-otlp-attempt",
            daemon=True,
        )
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0.0) + _GRACE)
        if not outcome:
            self._hanging = worker
            raise CollectorResponseError("no complete answer by the attempt's deadline")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _attempt(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float | None
    ) -> requests.Response:
        kwargs.update(stream=True, allow_redirects=False)
        response = super().request(*args, **kwargs)
        try:
            _refuse_redirect(response)
            _read_bounded(response, self.max_response_bytes, deadline)
        finally:
            response.close()  # read to the end: back to the pool; else the connection is dropped
        return response


def _refuse_redirect(response: requests.Response) -> None:
    if 300 <= response.status_code < 400:
        raise CollectorResponseError(
            f"collector answered a redirect ({response.status_code}); OTLP does not redirect"
        )


def _read_bounded(response: requests.Response, limit: int, deadline: float | None) -> None:
    """Read (and drop) the decompressed body: at most ``limit`` bytes, until ``deadline``."""
    size = 0
    for chunk in response.iter_content(chunk_size=_CHUNK):
        size += len(chunk)
        if size > limit:
            raise CollectorResponseError(f"collector response exceeds {limit} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise CollectorResponseError("collector response still arriving at the deadline")
