"""The HTTP session of the OTLP/HTTP exporters: fork-safe, and a collector cannot hurt us.

A pooled keep-alive connection opened by the parent must never be reused by a forked
child (gunicorn/uvicorn workers): both would write to one TCP stream.  The session
notices it runs in a new process and drops the inherited pools before the next request.

Whatever a collector answers, the process pays a bounded price (OTLP specification,
"Response size limits"): the body is streamed and read up to ``MAX_RESPONSE_BYTES``
*after* decompression (urllib3 inflates at most one chunk per read, so a gzip bomb never
expands in memory), and the read stops when the attempt's ``timeout`` is spent.  A body
over the cap, a redirect (OTLP has none; following one would send telemetry elsewhere)
or a slow-dripped body raises :class:`CollectorResponseError`, which the exporter
reports as a failed, non-retried export (counted in the self-metrics).
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

import requests

__all__ = ["MAX_RESPONSE_BYTES", "CollectorResponseError", "ForkSafeSession"]

MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
"""The response size the OTLP specification recommends as the client's limit."""
_CHUNK: Final = 64 * 1024


class CollectorResponseError(Exception):
    """The collector's answer was refused (too large, a redirect, too slow): not retried."""


class ForkSafeSession(requests.Session):
    """A ``requests.Session`` that starts with fresh connection pools in a forked child
    and reads at most ``max_response_bytes`` of any answer within the attempt's timeout."""

    def __init__(self, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self._pid = os.getpid()
        self.max_response_bytes = max_response_bytes

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request (no redirects, body streamed) and read its answer within bounds."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            for adapter in self.adapters.values():
                adapter.close()
        timeout = kwargs.get("timeout")
        deadline = time.monotonic() + timeout if isinstance(timeout, (int, float)) else None
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
