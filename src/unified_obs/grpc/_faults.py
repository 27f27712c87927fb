"""Fault injection for gRPC server handlers (:mod:`unified_obs.resilience.faults`).

When the process is armed as the interceptor wraps a handler, the handler's behaviour
is wrapped once more: before it runs (inside the call's span) the injector may delay the
call (``time.sleep`` in the thread pool, ``asyncio.sleep`` under ``grpc.aio``) and abort
it with the rule's gRPC code through ``context.abort``, so the call is recorded with that
status.  Rules match the method as ``rpc.method`` names it (``pkg.Service/Method``) in
``routes`` and the call's metadata in ``headers``.  Not armed: the behaviour is returned
as it is, and the call path is unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc

from ..resilience import faults

__all__ = ["with_faults"]

Behavior = Callable[..., Any]
_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}
_DETAILS: Final = "fault injected by unified_obs"


def with_faults(behavior: Behavior, method: str) -> Behavior:
    """``behavior`` with faults injected before it runs, when the process is armed."""
    if not faults.injector().armed:
        return behavior
    if inspect.isasyncgenfunction(behavior):
        return _async_generator(behavior, method)
    if inspect.iscoroutinefunction(behavior):
        return _coroutine(behavior, method)
    return _plain(behavior, method)


def _begin(method: str, context: Any) -> faults.Fault | None:
    try:
        metadata = {str(k).lower(): str(v) for k, v in context.invocation_metadata() or ()}
    except Exception:
        metadata = {}
    return faults.injector().begin(route=method, headers=metadata)


def _plain(behavior: Behavior, method: str) -> Behavior:
    @functools.wraps(behavior)
    def faulty(request: Any, context: Any) -> Any:
        fault = _begin(method, context)
        if fault is not None:
            faults.injector().wait_out(fault)
            if fault.abort is not None:
                context.abort(_CODES.get(fault.grpc_code, grpc.StatusCode.UNAVAILABLE), _DETAILS)
        return behavior(request, context)

    return faulty


async def _inject(method: str, context: Any) -> None:
    fault = _begin(method, context)
    if fault is None:
        return
    await faults.injector().wait_out_async(fault)
    if fault.abort is not None:
        await context.abort(_CODES.get(fault.grpc_code, grpc.StatusCode.UNAVAILABLE), _DETAILS)


def _coroutine(behavior: Behavior, method: str) -> Behavior:
    @functools.wraps(behavior)
    async def faulty(request: Any, context: Any) -> Any:
        await _inject(method, context)
        return await behavior(request, context)

    return faulty


def _async_generator(behavior: Behavior, method: str) -> Behavior:
    @functools.wraps(behavior)
    async def faulty(request: Any, context: Any) -> AsyncIterator[Any]:
        await _inject(method, context)
        async for item in behavior(request, context):
            yield item

    return faulty
