"""The four wrappers ``traced`` chooses between once, when it decorates a function.

- plain functions and coroutines: the span is current for the whole call;
- generators and async generators: the span covers the whole iteration, from the
  first ``next`` to exhaustion, error, ``close()`` or cancellation, and it is current
  only while the generator body runs, never while the consumer holds a yielded item
  (attaching across a ``yield`` is what makes "Failed to detach context" errors).

Every wrapper re-raises the caller's exception object unchanged (a bare ``raise``).

Plain functions and coroutines are also fault points named after the site (see
:mod:`unified_obs.resilience.faults`): while the process is not armed that costs one flag
read per call; armed, a rule that names the function delays it or raises in its place,
inside its span, so the fault is marked on it and an injected error is recorded like any.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from time import perf_counter
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from .._compat.wrapt import LeanFunctionWrapper as _Function
from ..resilience.faults import inject_named, inject_named_async, injector
from ._call_site import CallSite

__all__ = ["wrap"]

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


def wrap(fn: Any, site: CallSite) -> Any:
    """``fn`` wrapped by the wrapper that fits its kind."""
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    if inspect.isasyncgenfunction(target):
        wrapper = _async_generator_wrapper(site)
    elif inspect.isgeneratorfunction(target):
        wrapper = _generator_wrapper(site)
    elif inspect.iscoroutinefunction(target):
        wrapper = _coroutine_wrapper(site)
    else:
        wrapper = _function_wrapper(site)
    return _Function(fn, wrapper)


def _function_wrapper(site: CallSite) -> Wrapper:
    parent_context, begin = site.tracing.parent_context, site.begin
    end_ok, end_error, record_ok = site.end_ok, site.end_error, site.record_ok
    faults, name = injector(), site.name

    def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        parent = parent_context()
        opened = None if parent is None else begin(parent, wrapped, args, kwargs)
        if opened is None:  # no span: time and count only
            start = perf_counter()
            try:
                if faults.plan.armed:
                    inject_named(name)
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                end_error(start, None, exc)
                raise
            record_ok(perf_counter() - start)
            return result
        span, ctx = opened
        token = otel_context.attach(ctx)
        start = perf_counter()
        try:
            if faults.plan.armed:
                inject_named(name)
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            end_error(start, span, exc)
            raise
        else:
            end_ok(start, span)
        finally:
            otel_context.detach(token)
        return result

    return call


def _coroutine_wrapper(site: CallSite) -> Wrapper:
    parent_context, begin = site.tracing.parent_context, site.begin
    end_ok, end_error = site.end_ok, site.end_error
    faults, name = injector(), site.name

    async def call(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        parent = parent_context()
        opened = None if parent is None else begin(parent, wrapped, args, kwargs)
        span, token = (
            (None, None) if opened is None else (opened[0], otel_context.attach(opened[1]))
        )
        start = perf_counter()
        try:
            if faults.plan.armed:
                await inject_named_async(name)
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            end_error(start, span, exc)
            raise
        else:
            end_ok(start, span)
        finally:
            if token is not None:
                otel_context.detach(token)
        return result

    return call


def _open(
    site: CallSite, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Span | None, otel_context.Context | None]:
    """The span of a generator's iteration and its context, or ``(None, None)``."""
    parent = site.tracing.parent_context()
    opened = None if parent is None else site.begin(parent, wrapped, args, kwargs)
    return (None, None) if opened is None else opened


def _generator_wrapper(site: CallSite) -> Wrapper:
    def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # called eagerly, so bad arguments raise at the call as they would unwrapped
        return _traced_generator(site, wrapped(*args, **kwargs), wrapped, args, kwargs)

    return call


def _traced_generator(
    site: CallSite,
    generator: Generator[Any, Any, Any],
    wrapped: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[Any, Any, Any]:
    span, ctx = _open(site, wrapped, args, kwargs)
    start = perf_counter()
    step: Callable[[Any], Any] = generator.send  # send(None) starts it, like next()
    value: Any = None
    while True:
        token = None if ctx is None else otel_context.attach(ctx)
        try:
            item = step(value)
        except StopIteration as stop:
            site.end_ok(start, span)
            return stop.value
        except BaseException as exc:
            site.end_error(start, span, exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        try:
            sent = yield item
        except GeneratorExit:
            _close(site, generator, start, span, ctx)
            raise
        except BaseException as exc:  # thrown in by the consumer: pass it on
            step, value = generator.throw, exc
        else:
            step, value = generator.send, sent


def _close(
    site: CallSite,
    generator: Generator[Any, Any, Any],
    start: float,
    span: Any,
    ctx: otel_context.Context | None,
) -> None:
    """Close the inner generator in the span's context; an early close is not an error."""
    token = None if ctx is None else otel_context.attach(ctx)
    try:
        generator.close()
    except BaseException as exc:
        site.end_error(start, span, exc)
        raise
    else:
        site.end_ok(start, span)
    finally:
        if token is not None:
            otel_context.detach(token)


def _async_generator_wrapper(site: CallSite) -> Wrapper:
    def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _traced_async_generator(site, wrapped(*args, **kwargs), wrapped, args, kwargs)

    return call


async def _traced_async_generator(
    site: CallSite,
    generator: AsyncGenerator[Any, Any],
    wrapped: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[Any, Any]:
    span, ctx = _open(site, wrapped, args, kwargs)
    start = perf_counter()
    step: Callable[[Any], Any] = generator.asend  # asend(None) starts it, like anext()
    value: Any = None
    while True:
        token = None if ctx is None else otel_context.attach(ctx)
        try:
            item = await step(value)
        except StopAsyncIteration:
            site.end_ok(start, span)
            return
        except BaseException as exc:
            site.end_error(start, span, exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        try:
            sent = yield item
        except GeneratorExit:
            await _aclose(site, generator, start, span, ctx)
            raise
        except BaseException as exc:
            step, value = generator.athrow, exc
        else:
            step, value = generator.asend, sent


async def _aclose(
    site: CallSite,
    generator: AsyncGenerator[Any, Any],
    start: float,
    span: Any,
    ctx: otel_context.Context | None,
) -> None:
    """Close the inner async generator in the span's context (see :func:`_close`)."""
    token = None if ctx is None else otel_context.attach(ctx)
    try:
        await generator.aclose()
    except BaseException as exc:
        site.end_error(start, span, exc)
        raise
    else:
        site.end_ok(start, span)
    finally:
        if token is not None:
            otel_context.detach(token)
