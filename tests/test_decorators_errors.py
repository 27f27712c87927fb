"""``@traced`` when calls fail, are cancelled or are abandoned: exceptions pass through
unchanged, are recorded and logged once; cancellation and early close are not errors."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import unified_obs as obs
from unified_obs.testing import Captured, capture

MODULE = __name__


class PaymentDeclined(Exception):
    """A domain error."""


def calls(cap: Captured, function: str, outcome: str, error_type: str = "") -> float | None:
    """The ``function.calls`` value of one series."""
    return cap.metric(
        "function.calls", function=function, module=MODULE, outcome=outcome, error_type=error_type
    )


def error_logs(cap: Captured) -> list[dict[str, object]]:
    """The error lines ``traced`` wrote."""
    return [r for r in cap.logs if r.get("event") == "function.failed"]


@obs.traced
def charge(amount: int) -> int:
    """Fail for negative amounts."""
    if amount < 0:
        raise PaymentDeclined(f"bad amount {amount}")
    return amount


def test_exception_is_reraised_unchanged_and_recorded() -> None:
    """The caller gets the very exception object, its traceback still ends at the raise;
    the span is Error with ``error.type`` and an exception event; metrics count it."""
    with capture() as cap:
        with pytest.raises(PaymentDeclined) as caught:
            charge(-1)
        frames = traceback.extract_tb(caught.value.__traceback__)
        assert frames[-1].name == "charge"
        assert frames[-1].line == 'raise PaymentDeclined(f"bad amount {amount}")'
        span = cap.span("charge")
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "PaymentDeclined: bad amount -1"
        error_type = f"{MODULE}.PaymentDeclined"
        assert span.attributes["error.type"] == error_type  # type: ignore[index]
        assert [e.name for e in span.events] == ["exception"]
        event = dict(span.events[0].attributes or {})
        assert event["exception.type"] == error_type
        assert "bad amount -1" in str(event["exception.stacktrace"])
        assert calls(cap, "charge", "error", error_type) == 1.0
        assert not calls(cap, "charge", "ok")  # zero or absent
        assert cap.metric("function.duration", function="charge", module=MODULE, outcome="error")


def test_same_object_is_raised() -> None:
    """Identity, not just type: the wrapper never wraps or copies the exception."""
    error = PaymentDeclined("x")

    @obs.traced
    def fail() -> None:
        raise error

    with capture(), pytest.raises(PaymentDeclined) as caught:
        fail()
    assert caught.value is error
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_error_is_logged_once_with_the_span_ids() -> None:
    """One error line per exception, from the innermost decorated call, carrying that
    span's trace and span ids and the structured exception; outer spans still record it."""

    @obs.traced
    def outer() -> None:
        charge(-5)

    with capture() as cap:
        with pytest.raises(PaymentDeclined):
            outer()
        lines = error_logs(cap)
        assert len(lines) == 1
        inner = cap.span("charge")
        assert lines[0]["trace_id"] == format(inner.context.trace_id, "032x")
        assert lines[0]["span_id"] == format(inner.context.span_id, "016x")
        assert lines[0]["function"] == "charge"
        assert lines[0]["level"] == "error"
        assert lines[0]["exception"]
        outer_span = cap.span("test_error_is_logged_once_with_the_span_ids.<locals>.outer")
        assert outer_span.status.status_code is StatusCode.ERROR


def test_log_errors_can_be_turned_off() -> None:
    """``log_errors=False`` still records the span error and the metric, without a log line."""

    @obs.traced(log_errors=False)
    def quiet() -> None:
        raise ValueError("no log")

    with capture() as cap:
        with pytest.raises(ValueError, match="no log"):
            quiet()
        assert error_logs(cap) == []
        assert cap.spans[0].status.status_code is StatusCode.ERROR
        assert calls(cap, quiet.__qualname__, "error", "ValueError") == 1.0


def test_async_exception() -> None:
    """A coroutine's exception is recorded and propagates to the awaiting code."""

    @obs.traced
    async def fail() -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")

    with capture() as cap:
        with pytest.raises(KeyError):
            asyncio.run(fail())
        assert cap.spans[0].attributes["error.type"] == "KeyError"  # type: ignore[index]
        assert len(error_logs(cap)) == 1


def test_cancellation_is_not_an_error() -> None:
    """A cancelled coroutine ends its span without Error status, marked ``cancelled``, is
    counted with ``outcome="cancelled"`` and is not logged."""
    started = asyncio.Event()

    @obs.traced
    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(wait_forever())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with capture() as cap:
        asyncio.run(main())
        span = cap.spans[0]
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes["cancelled"] is True  # type: ignore[index]
        assert "error.type" not in (span.attributes or {})
        assert calls(cap, wait_forever.__qualname__, "cancelled") == 1.0
        assert error_logs(cap) == []


def test_generator_closed_early_ends_its_span() -> None:
    """Breaking out of a decorated generator closes it: its ``finally`` runs inside the
    span, the span ends, and it counts as ok (no error, no log)."""
    cleanup_span_ids: list[int] = []

    @obs.traced
    def rows() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            cleanup_span_ids.append(trace.get_current_span().get_span_context().span_id)

    with capture() as cap:
        for row in rows():
            if row == 2:
                break
        span = cap.span(rows.__qualname__)
        assert cleanup_span_ids == [span.context.span_id]
        assert span.status.status_code is StatusCode.UNSET
        assert calls(cap, rows.__qualname__, "ok") == 1.0
        assert error_logs(cap) == []


def test_generator_error_mid_iteration() -> None:
    """An exception raised between items ends the span as an error and propagates."""

    @obs.traced
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("row 2 is corrupt")

    with capture() as cap:
        iterator = broken()
        assert next(iterator) == 1
        with pytest.raises(RuntimeError, match="corrupt"):
            next(iterator)
        assert cap.spans[0].status.status_code is StatusCode.ERROR
        assert calls(cap, broken.__qualname__, "error", "RuntimeError") == 1.0


def test_throw_reaches_the_generator() -> None:
    """``throw()`` is passed into the decorated generator, which may handle it and go on."""

    @obs.traced
    def resilient() -> Generator[str, None, None]:
        while True:
            try:
                yield "ready"
            except ValueError as exc:
                yield f"handled {exc}"

    with capture() as cap:
        iterator = resilient()
        assert next(iterator) == "ready"
        assert iterator.throw(ValueError("boom")) == "handled boom"
        iterator.close()
        assert cap.spans[0].status.status_code is StatusCode.UNSET


def test_async_generator_closed_early_and_cancelled() -> None:
    """``aclose()`` after a partial iteration ends the span as ok; a consumer task
    cancelled while the generator awaits ends it as cancelled."""

    @obs.traced
    async def ticks() -> AsyncGenerator[int, None]:
        for i in range(100):
            await asyncio.sleep(0)
            yield i

    @obs.traced
    async def stalled() -> AsyncIterator[int]:
        yield 0
        await asyncio.Event().wait()
        yield 1  # pragma: no cover - never reached

    async def main() -> None:
        iterator = ticks()
        assert await iterator.__anext__() == 0
        await iterator.aclose()

        async def consume() -> None:
            async for _ in stalled():
                pass

        task = asyncio.create_task(consume())
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with capture() as cap:
        asyncio.run(main())
        assert calls(cap, ticks.__qualname__, "ok") == 1.0
        assert calls(cap, stalled.__qualname__, "cancelled") == 1.0
        assert {s.name: s.status.status_code for s in cap.spans} == {
            ticks.__qualname__: StatusCode.UNSET,
            stalled.__qualname__: StatusCode.UNSET,
        }
        assert error_logs(cap) == []


def test_broken_tracer_provider_never_breaks_the_call() -> None:
    """If the tracer provider fails, the call still runs and returns (no span)."""

    class Broken(trace.TracerProvider):
        def get_tracer(self, *args: object, **kwargs: object) -> trace.Tracer:
            raise RuntimeError("provider bug")

    @obs.traced(tracer_provider=Broken())
    def still_works() -> int:
        return 42

    with capture() as cap:
        assert still_works() == 42
        assert calls(cap, still_works.__qualname__, "ok") == 1.0


def test_abandoned_generators_end_their_spans_without_errors() -> None:
    """A generator dropped half-way (closed by garbage collection) and an async generator
    left by ``break`` (finalised by the event loop) end their spans as ok, and nothing is
    logged at error level (no "Failed to detach context")."""

    @obs.traced
    def numbers() -> Iterator[int]:
        yield from range(10)

    @obs.traced
    async def anumbers() -> AsyncIterator[int]:
        for i in range(10):
            await asyncio.sleep(0)
            yield i

    async def main() -> None:
        async for i in anumbers():
            if i == 1:
                break
        for _ in range(5):  # the loop's finaliser closes the abandoned generator in a task
            await asyncio.sleep(0)

    with capture() as cap:
        iterator = numbers()
        next(iterator)
        del iterator
        asyncio.run(main())
        assert sorted(s.name for s in cap.spans) == sorted(
            [numbers.__qualname__, anumbers.__qualname__]
        )
        assert calls(cap, anumbers.__qualname__, "ok") == 1.0
        assert [r for r in cap.logs if r.get("level") in ("error", "critical")] == []


def test_interrupts_count_as_cancelled() -> None:
    """``KeyboardInterrupt`` and ``SystemExit`` are interruptions, not errors."""

    @obs.traced
    def interrupted(exc: BaseException) -> None:
        raise exc

    with capture() as cap:
        for exc in (KeyboardInterrupt(), SystemExit(3)):
            with pytest.raises(type(exc)):
                interrupted(exc)
        assert calls(cap, interrupted.__qualname__, "cancelled") == 2.0
        assert error_logs(cap) == []


def test_conflicting_metric_definition_never_breaks_calls() -> None:
    """If the application already defined ``function.calls`` differently, decorated calls
    still run and make spans; only their metrics are lost."""
    obs.counter("function.calls", "mine", labels=("route",))

    @obs.traced
    def unaffected() -> int:
        return 5

    with capture() as cap:
        assert unaffected() == 5
        with pytest.raises(PaymentDeclined):
            charge(-3)
        assert len(cap.spans) == 2


def test_exception_that_cannot_be_printed() -> None:
    """An exception whose ``__str__`` raises still propagates unchanged and the span ends."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    @obs.traced
    def fail() -> None:
        raise Unprintable

    with capture() as cap:
        with pytest.raises(Unprintable):
            fail()
        assert len(cap.spans) == 1
        assert calls(cap, fail.__qualname__, "error", f"{MODULE}.{Unprintable.__qualname__}") == 1.0


def test_error_without_a_span_is_counted_and_logged() -> None:
    """Sampled out at the root, a failing call makes no span but is counted and logged
    with the trace id of its (non-recording) root span."""
    with capture(traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.0) as cap:
        with pytest.raises(PaymentDeclined):
            charge(-2)
        assert cap.spans == ()
        assert calls(cap, "charge", "error", f"{MODULE}.PaymentDeclined") == 1.0
        (line,) = error_logs(cap)
        assert len(str(line["trace_id"])) == 32


def test_generator_cleanup_error_on_close() -> None:
    """A generator whose cleanup raises when closed early: the error is recorded on the
    span and reaches the code that closed it."""

    @obs.traced
    def fragile() -> Generator[int, None, None]:
        try:
            yield 1
        finally:
            raise OSError("flush failed")

    @obs.traced
    async def afragile() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            raise OSError("async flush failed")

    async def main() -> None:
        iterator = afragile()
        await iterator.__anext__()
        with pytest.raises(OSError, match="async flush failed"):
            await iterator.aclose()

    with capture() as cap:
        iterator = fragile()
        next(iterator)
        with pytest.raises(OSError, match="flush failed"):
            iterator.close()
        asyncio.run(main())
        assert [s.status.status_code for s in cap.spans] == [StatusCode.ERROR] * 2
        assert calls(cap, fragile.__qualname__, "error", "OSError") == 1.0
        assert calls(cap, afragile.__qualname__, "error", "OSError") == 1.0
