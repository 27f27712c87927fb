"""Views (async, as an ASGI project writes them) and a middleware placed after ours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpResponse, HttpResponseForbidden, StreamingHttpResponse

import unified_obs as obs


async def item(request: Any, item_id: int) -> HttpResponse:
    """Logs a line under the request's trace."""
    obs.get_logger("app").info("item.read", item=item_id)
    return HttpResponse("item")


async def boom(request: Any) -> HttpResponse:
    """Raises."""
    raise RuntimeError("boom")


async def stream(request: Any) -> StreamingHttpResponse:
    """Three chunks 0.1 s apart."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.1)
            yield b"chunk"

    return StreamingHttpResponse(chunks())


class SlowGate:
    """A sync Django middleware after ours (Django adapts it under ASGI): 50 ms of work, and
    a 403 when asked."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        """Sleep, then reject or pass the request on."""
        time.sleep(0.05)
        if "HTTP_X_REJECT" in request.META:
            return HttpResponseForbidden("no")
        return self.get_response(request)
