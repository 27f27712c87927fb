"""``@traced`` on every kind of callable: spans, ``code.*`` attributes, metrics, signatures."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import unified_obs as obs
from unified_obs.testing import Captured, capture

MODULE = __name__


def calls(cap: Captured, function: str, outcome: str = "ok", error_type: str = "") -> float | None:
    """The ``function.calls`` value of one series."""
    return cap.metric(
        "function.calls", function=function, module=MODULE, outcome=outcome, error_type=error_type
    )


def timings(cap: Captured, function: str, outcome: str = "ok") -> float | None:
    """The number of ``function.duration`` observations of one series."""
    return cap.metric("function.duration", function=function, module=MODULE, outcome=outcome)


def first_line(fn: Callable[..., Any]) -> int:
    """The line of ``def`` (decorators excluded) of the innermost function."""
    line: int = inspect.unwrap(fn).__code__.co_firstlineno
    return line


@obs.traced
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@obs.traced
async def fetch(key: str) -> str:
    """Pretend to fetch ``key``."""
    await asyncio.sleep(0)
    return key.upper()


@obs.traced
def count_up(n: int) -> Iterator[int]:
    """Yield 0..n-1."""
    yield from range(n)


@obs.traced
async def acount_up(n: int) -> AsyncIterator[int]:
    """Yield 0..n-1 asynchronously."""
    for i in range(n):
        await asyncio.sleep(0)
        yield i


class Service:
    """Every kind of method, decorated in both orders where it matters."""

    factor = 10

    @obs.traced
    def scale(self, x: int) -> int:
        """An instance method."""
        return x * self.factor

    @obs.traced
    @classmethod
    def make(cls, x: int) -> int:
        """A classmethod under the decorator."""
        return x * cls.factor

    @classmethod
    @obs.traced
    def make_inner(cls, x: int) -> int:
        """A classmethod above the decorator."""
        return x + cls.factor

    @obs.traced
    @staticmethod
    def pure(x: int) -> int:
        """A staticmethod under the decorator."""
        return -x

    @staticmethod
    @obs.traced
    def pure_inner(x: int) -> int:
        """A staticmethod above the decorator."""
        return x - 1

    @obs.traced
    async def ascale(self, x: int) -> int:
        """An async method."""
        return x * self.factor

    @obs.traced
    def items(self, n: int) -> Iterator[int]:
        """A generator method."""
        for i in range(n):
            yield i * self.factor


def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Another decorator (functools.wraps based) under ``traced``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@obs.traced
@logged
def wrapped_twice(x: int, *, y: int = 1) -> int:
    """Decorated by another decorator first."""
    return x + y


def test_sync_function_span_attributes_and_metrics() -> None:
    """A plain call makes one span named after the qualified name, with code attributes
    computed at decoration time, and one ok sample in each metric."""
    with capture() as cap:
        assert add(1) == 3
        span = cap.span("add")
        assert span.kind is SpanKind.INTERNAL
        assert dict(span.attributes or {}) == {
            "code.function.name": f"{MODULE}.add",
            "code.file.path": __file__,
            "code.line.number": first_line(add),
        }
        assert calls(cap, "add") == 1.0
        assert timings(cap, "add") == 1.0


def test_coroutine_span_covers_the_await() -> None:
    """A coroutine's span starts and ends around the awaited body; its result comes back."""
    with capture() as cap:
        assert asyncio.run(fetch("k")) == "K"
        span = cap.span("fetch")
        assert span.end_time is not None
        assert span.start_time is not None
        assert calls(cap, "fetch") == 1.0


def test_generator_span_covers_the_whole_iteration() -> None:
    """A generator's span is still open while items are consumed and ends at exhaustion."""
    with capture() as cap:
        iterator = count_up(3)
        assert next(iterator) == 0
        assert cap.spans == ()
        assert list(iterator) == [1, 2]
        assert cap.span("count_up").attributes["code.function.name"] == f"{MODULE}.count_up"  # type: ignore[index]
        assert calls(cap, "count_up") == 1.0


def test_generator_return_value_and_send_pass_through() -> None:
    """``send`` values reach the generator and its ``return`` value reaches ``yield from``."""

    @obs.traced
    def echo() -> Generator[int, int | None, int]:
        received = yield 0
        while received is not None:
            received = yield received * 2
        return -1

    def outer() -> Generator[int, int | None, None]:
        result = yield from echo()
        yield result

    with capture() as cap:
        iterator = outer()
        assert next(iterator) == 0
        assert iterator.send(5) == 10
        assert iterator.send(None) == -1
        assert cap.span("test_generator_return_value_and_send_pass_through.<locals>.echo")


def test_async_generator_span_covers_the_whole_iteration() -> None:
    """An async generator's span ends when iteration ends, after every item."""

    async def consume() -> list[int]:
        return [i async for i in acount_up(3)]

    with capture() as cap:
        assert asyncio.run(consume()) == [0, 1, 2]
        assert cap.span("acount_up")
        assert calls(cap, "acount_up") == 1.0


def test_methods_of_every_kind() -> None:
    """Instance, class and static methods, in both decorator orders, called on the
    instance and on the class, each make a span named ``Class.method``."""
    service = Service()
    with capture() as cap:
        assert service.scale(2) == 20
        assert Service.scale(service, 3) == 30
        assert service.make(2) == Service.make(2) == 20
        assert service.make_inner(1) == Service.make_inner(1) == 11
        assert service.pure(4) == Service.pure(4) == -4
        assert service.pure_inner(4) == Service.pure_inner(4) == 3
        assert asyncio.run(service.ascale(5)) == 50
        assert list(service.items(2)) == [0, 10]
        names = sorted(span.name for span in cap.spans)
        assert names == sorted(
            ["Service.scale"] * 2
            + ["Service.make"] * 2
            + ["Service.make_inner"] * 2
            + ["Service.pure"] * 2
            + ["Service.pure_inner"] * 2
            + ["Service.ascale", "Service.items"]
        )
        assert calls(cap, "Service.make") == 2.0


def test_function_under_another_decorator() -> None:
    """Under a ``functools.wraps`` decorator the span and attributes still describe the
    innermost function, and the signature is the original one."""
    with capture() as cap:
        assert wrapped_twice(1, y=2) == 3
        span = cap.span("wrapped_twice")
        assert span.attributes["code.line.number"] == first_line(wrapped_twice)  # type: ignore[index]
    assert str(inspect.signature(wrapped_twice)) == "(x: 'int', *, y: 'int' = 1) -> 'int'"


@pytest.mark.parametrize(
    ("fn", "check"),
    [
        (add, inspect.isfunction),
        (fetch, inspect.iscoroutinefunction),
        (count_up, inspect.isgeneratorfunction),
        (acount_up, inspect.isasyncgenfunction),
    ],
)
def test_signature_and_metadata_are_preserved(
    fn: Callable[..., Any], check: Callable[[Any], bool]
) -> None:
    """Signature, name, docstring, ``__wrapped__`` and the kind of callable survive."""
    original = fn.__wrapped__  # type: ignore[attr-defined]
    assert check(fn)
    assert inspect.signature(fn) == inspect.signature(original)
    assert (fn.__name__, fn.__qualname__, fn.__doc__, fn.__module__) == (
        original.__name__,
        original.__qualname__,
        original.__doc__,
        original.__module__,
    )


def test_method_signatures_are_preserved() -> None:
    """Bound methods show the signature without ``self``/``cls``, like undecorated ones."""
    assert str(inspect.signature(Service().scale)) == "(x: 'int') -> 'int'"
    assert str(inspect.signature(Service.make)) == "(x: 'int') -> 'int'"
    assert str(inspect.signature(Service.pure)) == "(x: 'int') -> 'int'"
    assert inspect.iscoroutinefunction(Service().ascale)


def test_nested_calls_make_parent_and_child_spans() -> None:
    """A decorated call inside another is its child, in the same trace."""

    @obs.traced
    def inner() -> int:
        return 1

    @obs.traced
    def outer() -> int:
        return inner() + inner()

    with capture() as cap:
        assert outer() == 2
        parent = cap.span("test_nested_calls_make_parent_and_child_spans.<locals>.outer")
        children = [s for s in cap.spans if s.name.endswith("inner")]
        assert len(children) == 2
        for child in children:
            assert child.parent is not None
            assert child.parent.span_id == parent.context.span_id
            assert child.context.trace_id == parent.context.trace_id


def test_nested_async_and_generator_calls_keep_the_parent() -> None:
    """Spans made inside a coroutine or a generator body are children of its span, and
    the consumer's context is restored between items (no leak across ``yield``)."""

    @obs.traced
    def leaf() -> None:
        pass

    @obs.traced
    def producer() -> Iterator[int]:
        leaf()
        yield 1
        leaf()
        yield 2

    @obs.traced
    async def consumer() -> list[str]:
        seen = []
        for _ in producer():
            seen.append(trace.get_current_span().get_span_context().span_id)
        return [format(s, "x") for s in seen]

    with capture() as cap:
        seen = asyncio.run(consumer())
        by_name = {s.name.rsplit(".", 1)[-1]: s for s in cap.spans}
        consumer_span, producer_span = by_name["consumer"], by_name["producer"]
        assert seen == [format(consumer_span.context.span_id, "x")] * 2
        assert producer_span.parent is not None
        assert producer_span.parent.span_id == consumer_span.context.span_id
        leaves = [s for s in cap.spans if s.name.endswith("leaf")]
        assert [s.parent.span_id for s in leaves if s.parent] == [producer_span.context.span_id] * 2


def test_calls_in_a_thread_pool_keep_the_parent() -> None:
    """With ``wrap_context``, decorated calls in worker threads are children of the span
    that submitted them."""

    @obs.traced
    def job(n: int) -> int:
        return n * n

    @obs.traced
    def fan_out() -> list[int]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(obs.wrap_context(job), range(4)))

    with capture() as cap:
        assert fan_out() == [0, 1, 4, 9]
        parent = cap.span(fan_out.__qualname__)
        jobs = [s for s in cap.spans if s.name == job.__qualname__]
        assert len(jobs) == 4
        assert {s.parent.span_id for s in jobs if s.parent} == {parent.context.span_id}


def test_options_name_attributes_kind() -> None:
    """``name``, ``attributes`` and ``kind`` shape the span; ``name`` is also the metric label."""

    @obs.traced(name="checkout.pay", attributes={"team": "payments"}, kind=SpanKind.CLIENT)
    def pay() -> None:
        pass

    with capture() as cap:
        pay()
        span = cap.span("checkout.pay")
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["team"] == "payments"  # type: ignore[index]
        assert span.attributes["code.function.name"].endswith("<locals>.pay")  # type: ignore[index, union-attr]
        assert calls(cap, "checkout.pay") == 1.0


def test_name_as_the_only_argument() -> None:
    """``@traced("name")`` is short for ``@traced(name="name")``."""

    @obs.traced("inventory.sync")
    async def sync_inventory() -> None:
        pass

    with capture() as cap:
        asyncio.run(sync_inventory())
        assert [s.name for s in cap.spans] == ["inventory.sync"]
        assert calls(cap, "inventory.sync") == 1.0


def test_metrics_can_be_turned_off() -> None:
    """``metrics=False`` keeps the span and records no series."""

    @obs.traced(metrics=False)
    def quiet() -> None:
        pass

    with capture() as cap:
        quiet()
        assert len(cap.spans) == 1
        assert calls(cap, quiet.__qualname__) is None


def test_works_before_setup_and_picks_up_the_sdk_after() -> None:
    """Decorated at import time and called before ``setup()``: metrics only, no error;
    after ``setup()`` the same function makes spans (the tracer is found lazily)."""
    assert add(2, 2) == 4
    from unified_obs import metrics

    assert (
        metrics.value("function.calls", function="add", module=MODULE, outcome="ok", error_type="")
        == 1.0
    )
    with capture() as cap:
        add(1)
        assert [s.name for s in cap.spans] == ["add"]


def test_builtins_classes_and_callable_objects() -> None:
    """Any callable can be traced; names never contain an address."""

    class Doubler:
        def __call__(self, value: int) -> int:
            return value * 2

    traced_len = obs.traced(len)
    traced_doubler = obs.traced(Doubler())
    with capture() as cap:
        assert traced_len([1, 2]) == 2
        assert traced_doubler(4) == 8
        assert [s.name for s in cap.spans] == ["len", Doubler.__qualname__]


def test_explicit_tracer_provider() -> None:
    """``tracer_provider=`` sends spans to that provider instead of the global one."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @obs.traced(tracer_provider=provider)
    def local() -> int:
        return 7

    with capture() as cap:
        assert local() == 7
        assert cap.spans == ()
    assert [s.name for s in exporter.get_finished_spans()] == [local.__qualname__]
