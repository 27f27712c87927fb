"""An HTTP session for the OTLP/HTTP exporters that is safe across ``fork()``.

A pooled keep-alive connection opened by the parent must never be reused by a forked
child (gunicorn/uvicorn workers): both would write to one TCP stream.  The session
notices it runs in a new process and drops the inherited pools before the next request.
"""

from __future__ import annotations

import os
from typing import Any

import requests

__all__ = ["ForkSafeSession"]


class ForkSafeSession(requests.Session):
    """A ``requests.Session`` that starts with fresh connection pools in a forked child."""

    def __init__(self) -> None:
        super().__init__()
        self._pid = os.getpid()

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request, first dropping pools inherited from a parent process."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            for adapter in self.adapters.values():
                adapter.close()
        return super().request(*args, **kwargs)
