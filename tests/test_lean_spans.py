"""Lean spans are indistinguishable from stock SDK spans to processors, exporters and users.

Every scenario runs twice, once on a ``LeanTracerProvider`` and once on the stock SDK
``TracerProvider``, both with the same sampler, limits, resource, counting id generator
and a ``SimpleSpanProcessor(InMemorySpanExporter())``; the exported spans are compared
field by field.
"""

from __future__ import annotations

import copy
import dis
import gc
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import Attributes

import unified_obs
import unified_obs._compat.opentelemetry_tracer
from tests.otel_release import SDK
from unified_obs._compat.opentelemetry_tracer import (
    LeanSpan,
    LeanTracer,
    LeanTracerProvider,
    lean_spans_fit,
    lean_spans_supported,
)
from unified_obs.tracing import ClosableSampler, build_sampler

pytestmark = pytest.mark.skipif(
    not lean_spans_supported(),
    reason="the installed SDK has span fields the lean span does not fill, so the lean path "
    "is off; tests/test_compat_paths.py covers that release",
)

T0 = 1_700_000_000_000_000_000
"""An explicit start time; every time a scenario passes is T0 plus a few nanoseconds."""

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01"
UNSAMPLED_TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-00"

ROOMY = SpanLimits(max_span_attributes=16, max_span_attribute_length=16)
"""Room for every clean attribute a scenario sets: the lean fast paths apply."""

TIGHT = SpanLimits(max_span_attributes=3, max_span_attribute_length=5, max_events=2, max_links=1)
"""Small enough for scenarios to overflow every limit."""

RESOURCE = Resource({"service.name": "svc", "deployment.environment": "test"})

Scenario = Callable[[trace_api.Tracer], None]
SpanAction = Callable[[trace_api.Span], None]


class _CountingIds(IdGenerator):
    """Deterministic ids, so both providers give their spans the very same contexts."""

    def __init__(self) -> None:
        self._trace_ids = itertools.count(0x1000)
        self._span_ids = itertools.count(0x10)

    def generate_trace_id(self) -> int:
        return next(self._trace_ids)

    def generate_span_id(self) -> int:
        return next(self._span_ids)


@dataclass
class _Side:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    tracer: trace_api.Tracer

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


class _Pairs:
    """Builds a lean and a stock provider configured alike; shuts them all down at the end."""

    def __init__(self) -> None:
        self._providers: list[TracerProvider] = []

    def side(
        self,
        provider_cls: type[TracerProvider],
        *,
        sampler: Sampler = ALWAYS_ON,
        limits: SpanLimits = ROOMY,
        counting_ids: bool = True,
    ) -> _Side:
        provider = provider_cls(
            sampler=sampler,
            resource=RESOURCE,
            shutdown_on_exit=False,
            id_generator=_CountingIds() if counting_ids else None,
            span_limits=limits,
        )
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._providers.append(provider)
        tracer = provider.get_tracer(
            "lib.under.test", "1.2.3", "https://example.com/schema", {"scope.attr": "a"}
        )
        return _Side(provider, exporter, tracer)

    def __call__(
        self,
        *,
        sampler: Sampler = ALWAYS_ON,
        limits: SpanLimits = ROOMY,
        counting_ids: bool = True,
    ) -> tuple[_Side, _Side]:
        """(lean, stock)"""
        lean = self.side(
            LeanTracerProvider, sampler=sampler, limits=limits, counting_ids=counting_ids
        )
        stock = self.side(TracerProvider, sampler=sampler, limits=limits, counting_ids=counting_ids)
        assert type(lean.tracer) is LeanTracer
        assert type(stock.tracer) is Tracer
        return lean, stock

    def run(
        self, scenario: Scenario, *, sampler: Sampler = ALWAYS_ON, limits: SpanLimits = ROOMY
    ) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
        """Run ``scenario`` on both providers; their exported spans (lean, stock)."""
        lean, stock = self(sampler=sampler, limits=limits)
        scenario(lean.tracer)
        scenario(stock.tracer)
        return lean.finished(), stock.finished()

    def close(self) -> None:
        for provider in self._providers:
            provider.shutdown()


@pytest.fixture
def pairs() -> Iterator[_Pairs]:
    """Lean/stock provider pairs, shut down after the test."""
    built = _Pairs()
    yield built
    built.close()


def _context(context: SpanContext | None) -> tuple[object, ...] | None:
    if context is None:
        return None
    return (
        context.trace_id,
        context.span_id,
        context.is_remote,
        int(context.trace_flags),
        tuple(context.trace_state.items()),
    )


def _attributes(attributes: Attributes) -> list[tuple[str, object]]:
    """Attributes in their order (dict equality alone would ignore it)."""
    return list((attributes or {}).items())


def _snapshot(span: ReadableSpan, *, clock: bool = True) -> dict[str, object]:
    """Everything an exporter reads from ``span``; ``clock=False`` leaves out the times
    a scenario could not pass explicitly."""
    scope = span.instrumentation_scope
    assert scope is not None
    fields: dict[str, object] = {
        "name": span.name,
        "context": _context(span.context),
        "kind": span.kind,
        "parent": _context(span.parent),
        "attributes": _attributes(span.attributes),
        "status": (span.status.status_code, span.status.description),
        "events": [
            (event.name, _attributes(event.attributes), event.timestamp if clock else None)
            for event in span.events
        ],
        "links": [(_context(link.context), _attributes(link.attributes)) for link in span.links],
        "resource": (dict(span.resource.attributes), span.resource.schema_url),
        "scope": (scope.name, scope.version, scope.schema_url, dict(scope.attributes or {})),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }
    if clock:
        fields.update(start=span.start_time, end=span.end_time, json=span.to_json())
    return fields


def _assert_same(
    lean: Sequence[ReadableSpan], stock: Sequence[ReadableSpan], *, clock: bool = True
) -> None:
    assert len(lean) == len(stock)
    assert [_snapshot(s, clock=clock) for s in lean] == [_snapshot(s, clock=clock) for s in stock]


def _recording(span: trace_api.Span) -> Span:
    assert isinstance(span, Span)
    return span


# --- attributes, name, status, times ------------------------------------------------------


def test_clean_primitive_attributes_match_the_sdk(pairs: _Pairs) -> None:
    """Clean str/int/bool/float attributes at start, via set_attribute and set_attributes,
    plus update_name, set_status and an explicit end time export exactly as the SDK's."""

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span(
            "op",
            kind=SpanKind.SERVER,
            attributes={"s": "text", "i": 7, "b": True, "f": 1.5},
            start_time=T0,
        )
        span.set_attribute("i", 8)  # a key set again moves last
        span.set_attribute("neg", -1)
        span.set_attributes({"s": "again", "flag": False, "ratio": 0.25, "empty": ""})
        span.update_name("op renamed")
        span.set_status(StatusCode.ERROR, "it broke")
        span.end(end_time=T0 + 10)

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock)
    assert type(lean[0]) is LeanSpan  # the lean paths were the ones taken
    assert _attributes(stock[0].attributes) == [
        ("b", True),
        ("f", 1.5),
        ("i", 8),
        ("neg", -1),
        ("s", "again"),
        ("flag", False),
        ("ratio", 0.25),
        ("empty", ""),
    ]
    assert stock[0].name == "op renamed"
    assert (stock[0].start_time, stock[0].end_time) == (T0, T0 + 10)
    assert stock[0].status.status_code is StatusCode.ERROR
    assert stock[0].status.description == "it broke"


def test_input_mapping_is_copied_at_start(pairs: _Pairs) -> None:
    """Changing the caller's attribute dict after start_span changes neither span."""

    def scenario(tracer: trace_api.Tracer) -> None:
        attributes: dict[str, Any] = {"a": 1}
        span = tracer.start_span("op", attributes=attributes, start_time=T0)
        attributes["a"] = 2
        attributes["b"] = 3
        span.end(end_time=T0 + 1)

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock)
    assert dict(lean[0].attributes or {}) == {"a": 1}


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        pytest.param([(StatusCode.OK, None)], (StatusCode.OK, None), id="ok"),
        pytest.param(
            [(Status(StatusCode.ERROR, "from status"), None)],
            (StatusCode.ERROR, "from status"),
            id="status-object",
        ),
        pytest.param(
            [(StatusCode.ERROR, "first"), (StatusCode.OK, None)],
            (StatusCode.OK, None),
            id="error-then-ok",
        ),
        pytest.param(
            [(StatusCode.OK, None), (StatusCode.ERROR, "ignored")],
            (StatusCode.OK, None),
            id="ok-is-final",
        ),
        pytest.param(
            [(StatusCode.ERROR, "kept"), (StatusCode.UNSET, None)],
            (StatusCode.ERROR, "kept"),
            id="unset-ignored",
        ),
    ],
)
def test_status_matches_the_sdk(
    pairs: _Pairs,
    calls: list[tuple[Status | StatusCode, str | None]],
    expected: tuple[StatusCode, str | None],
) -> None:
    """Sequences of set_status calls leave the same final status on both spans."""

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("op", start_time=T0)
        for status, description in calls:
            span.set_status(status, description)
        span.end(end_time=T0 + 1)

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock)
    assert (stock[0].status.status_code, stock[0].status.description) == expected


class _Printable:
    def __str__(self) -> str:
        return "printed"


class _Opaque:
    """Neither __str__ nor __repr__ of its own: the validator replaces it with None."""


@pytest.mark.parametrize(
    ("start", "action", "expected", "dropped"),
    [
        pytest.param({"l": [1, 2]}, None, {"l": (1, 2)}, 0, id="list-at-start"),
        pytest.param(
            {}, lambda s: s.set_attribute("l", ["a", "b"]), {"l": ("a", "b")}, 0,
            id="list-set_attribute",
        ),
        pytest.param(
            {"k": 1}, lambda s: s.set_attributes({"l": [True], "m": 2}),
            {"k": 1, "l": (True,), "m": 2}, 0, id="list-set_attributes",
        ),
        pytest.param({"s": "toolongvalue"}, None, {"s": "toolo"}, 0, id="long-str-at-start"),
        pytest.param(
            {}, lambda s: s.set_attribute("s", "toolongvalue"), {"s": "toolo"}, 0,
            id="long-str-set_attribute",
        ),
        pytest.param(
            {}, lambda s: s.set_attributes({"s": "toolongvalue", "t": "ok"}),
            {"s": "toolo", "t": "ok"}, 0, id="long-str-set_attributes",
        ),
        pytest.param(
            {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, None, {"c": 3, "d": 4, "e": 5}, 2,
            id="too-many-at-start",
        ),
        pytest.param(
            {"a": 1, "b": 2, "c": 3}, lambda s: s.set_attribute("d", 4),
            {"b": 2, "c": 3, "d": 4}, 1, id="too-many-set_attribute",
        ),
        pytest.param(
            {"a": 1, "b": 2}, lambda s: s.set_attributes({"c": 3, "d": 4, "e": 5}),
            {"c": 3, "d": 4, "e": 5}, 2, id="too-many-set_attributes",
        ),
        pytest.param(
            {"a": 1, "b": 2, "c": 3}, lambda s: s.set_attribute("a", 9),
            {"b": 2, "c": 3, "a": 9}, 0, id="full-overwrite-set_attribute",
        ),
        pytest.param({"o": _Printable()}, None, {"o": "printed"}, 0, id="object-at-start"),
        pytest.param(
            {}, lambda s: s.set_attribute("o", cast(Any, _Printable())), {"o": "printed"}, 0,
            id="object-set_attribute",
        ),
        pytest.param(
            {}, lambda s: s.set_attributes({"o": cast(Any, _Opaque())}), {"o": None}, 0,
            id="opaque-object-set_attributes",
        ),
        pytest.param({1: "v"}, None, {"1": "v"}, 0, id="int-key-at-start"),
        pytest.param(
            {}, lambda s: s.set_attributes({cast(Any, 1): "v"}), {"1": "v"}, 0,
            id="int-key-set_attributes",
        ),
        pytest.param(
            {"k": 1}, lambda s: s.set_attribute(cast(Any, 1), "v"), {"k": 1}, 1,
            id="int-key-set_attribute",
        ),
        pytest.param({"": 1, "k": 2}, None, {"k": 2}, 1, id="empty-key-at-start"),
        pytest.param(
            {"k": 1}, lambda s: s.set_attribute("", 2), {"k": 1}, 1, id="empty-key-set_attribute"
        ),
        pytest.param(
            {}, lambda s: s.set_attribute("n", cast(Any, None)), {"n": None}, 0,
            id="none-set_attribute",
        ),
        pytest.param(
            {}, lambda s: s.set_attributes({"m": {"x": [1]}, "n": 1}),
            {"m": {"x": (1,)}, "n": 1}, 0, id="mapping-set_attributes",
        ),
        pytest.param(
            {"e": SpanKind.CLIENT}, None, {"e": "SpanKind.CLIENT"}, 0, id="enum-at-start",
        ),
    ],
)  # fmt: skip
def test_validated_attributes_match_the_sdk(
    pairs: _Pairs,
    start: Mapping[Any, Any],
    action: SpanAction | None,
    expected: dict[str, object],
    dropped: int,
) -> None:
    """Values the SDK's validator changes (sequences, long strings, too many attributes,
    objects, odd keys) end up exactly as the stock SDK leaves them."""

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("op", attributes=start, start_time=T0)
        if action is not None:
            action(span)
        span.end(end_time=T0 + 1)

    lean, stock = pairs.run(scenario, limits=TIGHT)
    if SDK >= (1, 41):  # 1.39 and 1.40 validate some of these differently: lean still == stock
        assert list((stock[0].attributes or {}).items()) == list(expected.items())
        assert stock[0].dropped_attributes == dropped
    _assert_same(lean, stock)


@pytest.mark.parametrize("value", ["later", ["later"]], ids=["clean", "list"])
@pytest.mark.parametrize("method", ["set_attribute", "set_attributes"])
def test_attributes_after_end_are_ignored(
    pairs: _Pairs, caplog: pytest.LogCaptureFixture, method: str, value: Any
) -> None:
    """set_attribute(s) on an ended span changes nothing and warns once, in both."""
    lean, stock = pairs()
    warned: list[int] = []
    for side in (lean, stock):
        span = side.tracer.start_span("op", attributes={"k": "before"}, start_time=T0)
        span.end(end_time=T0 + 1)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
            if method == "set_attribute":
                span.set_attribute("k", value)
            else:
                span.set_attributes({"k": value, "new": 1})
        warned.append(
            sum(r.getMessage() == "Setting attribute on ended span." for r in caplog.records)
        )
        assert dict(_recording(span).attributes or {}) == {"k": "before"}
    assert warned == [1, 1]
    _assert_same(lean.finished(), stock.finished())


def test_other_mutations_after_end_are_ignored(pairs: _Pairs) -> None:
    """update_name, set_status, add_event and add_link on an ended span change nothing."""
    link_to = SpanContext(TRACE_ID, PARENT_SPAN_ID, is_remote=True)

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("op", start_time=T0)
        span.end(end_time=T0 + 1)
        span.update_name("renamed")
        span.set_status(StatusCode.ERROR, "late")
        span.add_event("late", timestamp=T0 + 2)
        span.add_link(link_to)
        span.end(end_time=T0 + 3)  # a second end changes nothing either

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock)
    only = lean[0]
    assert (only.name, only.status.status_code, only.end_time) == ("op", StatusCode.UNSET, T0 + 1)
    assert (only.events, only.links) == ((), ())


def test_ended_spans_give_up_their_own_lock(pairs: _Pairs) -> None:
    """A lean span drops its own lock when it ends (one garbage-collected object fewer
    while it waits in an export queue): ended spans share one lock."""
    lean, _ = pairs()
    first = cast(LeanSpan, lean.tracer.start_span("one", start_time=T0))
    second = cast(LeanSpan, lean.tracer.start_span("two", start_time=T0))
    own = first._lock
    assert own is not second._lock
    first.end(end_time=T0 + 1)
    second.end(end_time=T0 + 1)
    assert first._lock is second._lock
    assert own not in gc.get_referents(first)


def test_a_warning_handler_touching_another_ended_span_does_not_deadlock(
    pairs: _Pairs,
) -> None:
    """The SDK warns under an ended span's lock; a log handler that then sets an attribute
    on another ended span (same shared lock, same thread) completes."""
    lean, _ = pairs()
    spans = [cast(LeanSpan, lean.tracer.start_span(n, start_time=T0)) for n in ("a", "b")]
    for span in spans:
        span.end(end_time=T0 + 1)
    seen: list[str] = []

    class Touch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())
            if len(seen) == 1:
                spans[1].set_attribute("late", 1)  # warns again, under the same lock

    logger = logging.getLogger("opentelemetry.sdk.trace")
    handler = Touch(logging.WARNING)
    logger.addHandler(handler)
    worker = threading.Thread(target=spans[0].set_attribute, args=("late", 1), daemon=True)
    try:
        worker.start()
        worker.join(timeout=10)
    finally:
        logger.removeHandler(handler)
    assert not worker.is_alive(), "deadlocked on the ended spans' lock"
    assert seen == ["Setting attribute on ended span."] * 2


# --- events and links -----------------------------------------------------------------------


def test_events_match_the_sdk(pairs: _Pairs) -> None:
    """add_event (beyond max_events too) and record_exception export as the SDK's."""

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("op", start_time=T0)
        span.add_event("first", {"n": 1, "l": [1, 2]}, timestamp=T0 + 1)
        span.add_event("second", timestamp=T0 + 2)
        try:
            raise ValueError("bad value")
        except ValueError as exc:
            span.record_exception(exc, {"extra": "x"}, timestamp=T0 + 3)
        span.end(end_time=T0 + 4)

    lean, stock = pairs.run(scenario, limits=TIGHT)
    _assert_same(lean, stock)
    events = lean[0].events
    assert [e.name for e in events] == ["second", "exception"]  # max_events=2
    assert lean[0].dropped_events == 1
    exception = dict(events[1].attributes or {})
    assert exception["exception.type"] == "ValueError"
    assert exception["exception.message"] == "bad value"
    assert exception["extra"] == "x"


def test_exception_in_a_current_span_matches_the_sdk(pairs: _Pairs) -> None:
    """An exception leaving start_as_current_span records the same event and error status."""

    def scenario(tracer: trace_api.Tracer) -> None:
        with pytest.raises(KeyError), tracer.start_as_current_span("op", start_time=T0):
            raise KeyError("missing")

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock, clock=False)
    for span in (lean[0], stock[0]):
        assert [e.name for e in span.events] == ["exception"]
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "KeyError: 'missing'"
    assert set((lean[0].events[0].attributes or {}).keys()) == set(
        (stock[0].events[0].attributes or {}).keys()
    )


@pytest.mark.parametrize("at_start", [True, False], ids=["links-at-start", "add_link"])
def test_links_match_the_sdk(pairs: _Pairs, at_start: bool) -> None:
    """Links given to start_span or added later (beyond max_links too) export as the SDK's."""
    remote = SpanContext(TRACE_ID, PARENT_SPAN_ID, is_remote=True)
    other = SpanContext(TRACE_ID + 1, PARENT_SPAN_ID + 1, is_remote=False)
    invalid = SpanContext(0, 0, is_remote=False)

    def scenario(tracer: trace_api.Tracer) -> None:
        if at_start:
            links = [Link(remote, {"why": "first"}), Link(invalid), Link(other, {"n": 1, "l": [1]})]
            span = tracer.start_span("op", links=links, start_time=T0)
        else:
            span = tracer.start_span("op", start_time=T0)
            span.add_link(remote, {"why": "first"})
            span.add_link(invalid)  # dropped: invalid and without attributes
            span.add_link(other, {"n": 1, "l": [1]})
        span.end(end_time=T0 + 1)

    lean, stock = pairs.run(scenario, limits=TIGHT)
    _assert_same(lean, stock)
    assert [link.context for link in lean[0].links] == [other]  # max_links=1 keeps the newest
    assert dict(lean[0].links[0].attributes or {}) == {"n": 1, "l": (1,)}
    assert lean[0].dropped_links == 1


@pytest.mark.parametrize("provider_cls", [LeanTracerProvider, TracerProvider])
def test_spans_never_share_events_or_links(
    pairs: _Pairs, provider_cls: type[TracerProvider]
) -> None:
    """An event or link added to one span never shows on another (lazily made lists)."""
    tracer = pairs.side(provider_cls).tracer
    link_a = SpanContext(TRACE_ID, 1, is_remote=True)
    link_b = SpanContext(TRACE_ID, 2, is_remote=True)
    a = _recording(tracer.start_span("a"))
    b = _recording(tracer.start_span("b"))
    a.add_event("only-a")
    assert (b.events, b.dropped_events) == ((), 0)
    b.add_event("only-b")
    a.add_link(link_a)
    assert (b.links, b.dropped_links) == ((), 0)
    b.add_link(link_b)
    a.end()
    b.end()
    c = _recording(tracer.start_span("c"))
    assert (c.events, c.links) == ((), ())
    c.end()
    assert [e.name for e in a.events] == ["only-a"]
    assert [e.name for e in b.events] == ["only-b"]
    assert [link.context for link in a.links] == [link_a]
    assert [link.context for link in b.links] == [link_b]


# --- parents and sampling -------------------------------------------------------------------


def test_child_of_a_lean_span_has_it_as_parent(pairs: _Pairs) -> None:
    """Children started in the current or an explicit context of a span have it as parent."""

    def scenario(tracer: trace_api.Tracer) -> None:
        with tracer.start_as_current_span("parent", start_time=T0, end_on_exit=False) as parent:
            tracer.start_span("current child", start_time=T0 + 1).end(end_time=T0 + 2)
        in_context = trace_api.set_span_in_context(parent)
        tracer.start_span("explicit child", context=in_context, start_time=T0 + 3).end(
            end_time=T0 + 4
        )
        parent.end(end_time=T0 + 5)

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock)
    current_child, explicit_child, parent = lean
    assert type(parent) is LeanSpan
    assert parent.parent is None
    for child in (current_child, explicit_child):
        assert child.parent == parent.context
        assert child.context is not None
        assert parent.context is not None
        assert child.context.trace_id == parent.context.trace_id


def test_remote_parent_from_traceparent(pairs: _Pairs) -> None:
    """A parent extracted from W3C traceparent/tracestate headers is the span's remote parent."""
    carrier = {"traceparent": TRACEPARENT, "tracestate": "vendor=value"}

    def scenario(tracer: trace_api.Tracer) -> None:
        context = propagate.extract(carrier)
        tracer.start_span("server", context=context, start_time=T0).end(end_time=T0 + 1)

    lean, stock = pairs.run(scenario)
    _assert_same(lean, stock)
    parent, context = lean[0].parent, lean[0].context
    assert parent is not None
    assert context is not None
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (TRACE_ID, PARENT_SPAN_ID, True)
    assert context.trace_id == TRACE_ID
    assert dict(context.trace_state) == {"vendor": "value"}


def _unsampled_remote() -> Context:
    return propagate.extract({"traceparent": UNSAMPLED_TRACEPARENT})


def _unsampled_local() -> Context:
    local = SpanContext(TRACE_ID, PARENT_SPAN_ID, is_remote=False, trace_flags=TraceFlags(0))
    return trace_api.set_span_in_context(NonRecordingSpan(local))


@pytest.mark.parametrize("parent", [_unsampled_remote, _unsampled_local], ids=["remote", "local"])
def test_unsampled_parent_gives_non_recording_span(
    pairs: _Pairs, parent: Callable[[], Context]
) -> None:
    """ParentBased with an unsampled parent gives the same non-recording span in both."""
    lean, stock = pairs(sampler=ParentBased(ALWAYS_ON))
    spans = [side.tracer.start_span("child", context=parent()) for side in (lean, stock)]
    for span in spans:
        assert type(span) is NonRecordingSpan
        assert not span.is_recording()
        span.end()
    assert _context(spans[0].get_span_context()) == _context(spans[1].get_span_context())
    assert spans[0].get_span_context().trace_id == TRACE_ID
    assert not spans[0].get_span_context().trace_flags.sampled
    assert lean.finished() == stock.finished() == []


def test_always_off_gives_non_recording_span(pairs: _Pairs) -> None:
    """ALWAYS_OFF gives a NonRecordingSpan with the same context in both; nothing exported."""
    lean, stock = pairs(sampler=ALWAYS_OFF)
    spans = [side.tracer.start_span("op", attributes={"k": 1}) for side in (lean, stock)]
    for span in spans:
        assert type(span) is NonRecordingSpan
        assert not span.is_recording()
        span.set_attribute("x", 1)
        span.end()
    assert _context(spans[0].get_span_context()) == _context(spans[1].get_span_context())
    assert spans[0].get_span_context().is_valid
    assert lean.finished() == stock.finished() == []


class _AddingSampler(Sampler):
    """Samples everything the way it is told, adding an attribute and a trace state."""

    def __init__(self, decision: Decision, value: Any) -> None:
        self._decision = decision
        self._value = value

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        added = {**(attributes or {}), "sampler.rule": self._value}
        return SamplingResult(self._decision, added, TraceState([("sampler", "yes")]))

    def get_description(self) -> str:
        return "AddingSampler"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("rule-1", "rule-1"), (["a", "b"], ("a", "b"))],
    ids=["clean", "validated"],
)
def test_sampler_attributes_are_on_the_span(pairs: _Pairs, value: Any, expected: object) -> None:
    """An attribute and trace state added by the sampler's result are on the span in both."""

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("op", attributes={"own": 1}, start_time=T0)
        span.end(end_time=T0 + 1)

    sampler = _AddingSampler(Decision.RECORD_AND_SAMPLE, value)
    lean, stock = pairs.run(scenario, sampler=sampler)
    _assert_same(lean, stock)
    assert dict(lean[0].attributes or {}) == {"own": 1, "sampler.rule": expected}
    assert lean[0].context is not None
    assert dict(lean[0].context.trace_state) == {"sampler": "yes"}


def test_record_only_spans_record_but_are_not_exported(pairs: _Pairs) -> None:
    """A RECORD_ONLY decision gives a recording, unsampled span in both; none is exported."""
    lean, stock = pairs(sampler=_AddingSampler(Decision.RECORD_ONLY, "r"))
    spans = [_recording(side.tracer.start_span("op", start_time=T0)) for side in (lean, stock)]
    for span in spans:
        assert span.is_recording()
        assert not span.get_span_context().trace_flags.sampled
        span.set_attribute("k", 1)
        span.end(end_time=T0 + 1)
    _assert_same(spans[:1], spans[1:])
    assert lean.finished() == stock.finished() == []


# --- types, tracer identity, fallback, probe, setup() ----------------------------------------


def test_lean_spans_are_sdk_spans(pairs: _Pairs) -> None:
    """Lean spans are SDK Spans and ReadableSpans, live and exported."""
    lean, _ = pairs()
    span = lean.tracer.start_span("op")
    assert type(span) is LeanSpan
    assert isinstance(span, Span)
    assert isinstance(span, ReadableSpan)
    assert isinstance(span, trace_api.Span)
    span.end()
    (exported,) = lean.finished()
    assert isinstance(exported, ReadableSpan)
    assert isinstance(exported, Span)


@pytest.mark.skipif(
    SDK < (1, 41),
    reason="the SDK caches one tracer per scope from 1.41 on (a new one per call before)",
)
def test_get_tracer_returns_one_lean_tracer_per_scope(pairs: _Pairs) -> None:
    """get_tracer on the lean provider returns a LeanTracer, the same object for a name."""
    provider = pairs.side(LeanTracerProvider).provider
    first = provider.get_tracer("lib")
    assert type(first) is LeanTracer
    assert provider.get_tracer("lib") is first
    other = provider.get_tracer("other")
    assert type(other) is LeanTracer
    assert other is not first


def test_lean_tracer_reads_its_fields_the_fast_way(pairs: _Pairs) -> None:
    """The tracer handed out is a new LeanTracer, not the SDK's tracer re-classed: after
    warm-up, CPython reads its fields in ``start_span`` without a dict lookup (a
    re-classed instance keeps its old layout and every read takes the slow path)."""
    provider = pairs.side(LeanTracerProvider).provider
    tracer = provider.get_tracer("fast")
    for _ in range(200):
        tracer.start_span("op").end()
    slow = [
        i.opname
        for i in dis.get_instructions(LeanTracer.start_span, adaptive=True)  # type: ignore[call-arg]
        if "WITH_HINT" in i.opname or "WITH_DICT" in i.opname
    ]
    assert slow == []


@pytest.mark.skipif(SDK < (1, 41), reason="providers update their tracers in place from 1.41 on")
def test_provider_updates_reach_the_lean_tracer(pairs: _Pairs) -> None:
    """The provider keeps updating the tracer it handed out: the resource merged in after
    a fork (the SDK's own ``_update_resource``) is on the next span."""
    side = pairs.side(LeanTracerProvider)
    tracer = side.provider.get_tracer("lib")
    side.provider._update_resource(Resource({"process.pid": 4242}))
    assert side.provider.get_tracer("lib") is tracer
    tracer.start_span("op").end()
    (span,) = side.finished()
    assert span.resource.attributes["process.pid"] == 4242


def test_get_tracer_falls_back_when_lean_spans_are_unsupported(
    pairs: _Pairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the probe reports False, the lean provider hands out the SDK's plain Tracer."""
    monkeypatch.setattr(
        unified_obs._compat.opentelemetry_tracer, "lean_spans_supported", lambda: False
    )
    side = pairs.side(LeanTracerProvider)
    assert type(side.tracer) is Tracer
    assert type(side.provider.get_tracer("lib")) is Tracer
    span = side.tracer.start_span("op")
    assert isinstance(span, Span)
    assert not isinstance(span, LeanSpan)
    span.end()
    assert [s.name for s in side.finished()] == ["op"]


def test_probe_reports_true_on_the_installed_sdk() -> None:
    """LeanSpan fills exactly the installed SDK span's fields (cached and uncached)."""
    assert lean_spans_supported() is True
    assert lean_spans_fit() is True


def test_probe_reports_false_when_the_fields_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """A LeanSpan constructor that sets one field more than the SDK's fails the probe."""
    original = LeanSpan.__init__

    def with_extra_field(self: LeanSpan, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        vars(self)["_extra_field"] = True

    monkeypatch.setattr(LeanSpan, "__init__", with_extra_field)
    assert lean_spans_fit() is False


def test_probe_reports_false_when_the_sdk_reads_attributes_another_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An SDK whose spans read their attributes as its own BoundedAttributes only (here:
    ``dropped_attributes`` without the isinstance check) fails the probe, since lean spans
    keep clean attributes in a plain dict."""
    monkeypatch.setattr(
        ReadableSpan, "dropped_attributes", property(lambda span: span._attributes.dropped)
    )
    assert lean_spans_fit() is False


def test_probe_reports_false_when_span_contexts_are_laid_out_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SpanContext whose tuple is not (trace id, span id, remote, flags, state, valid)
    fails the probe: lean spans build it without its constructor."""

    def reordered(fields: tuple[Any, ...]) -> Any:
        return tuple.__new__(SpanContext, (fields[1], fields[0], *fields[2:]))

    monkeypatch.setattr(unified_obs._compat.opentelemetry_tracer, "_span_context_of", reordered)
    assert lean_spans_fit() is False


def test_lean_span_contexts_equal_the_sdk_constructors(pairs: _Pairs) -> None:
    """The span context a lean span gets equals what SpanContext(...) builds from the same
    ids, flags and state, and the attribute mappings of two spans are separate."""
    side = pairs.side(LeanTracerProvider, counting_ids=False)
    first = side.tracer.start_span("a", attributes={"k": "v"})
    second = side.tracer.start_span("b")
    assert type(first) is LeanSpan
    context = first.get_span_context()
    made = SpanContext(
        context.trace_id,
        context.span_id,
        is_remote=False,
        trace_flags=context.trace_flags,
        trace_state=context.trace_state,
    )
    assert context == made
    assert context.is_valid
    assert not context.is_remote
    second.set_attribute("k", "other")
    first.end()
    second.end()
    assert [dict(s.attributes or {}) for s in side.finished()] == [{"k": "v"}, {"k": "other"}]


class _InvalidIds(IdGenerator):
    """An id generator that breaks the rules: span id 0, trace id beyond 128 bits."""

    def generate_trace_id(self) -> int:
        return 2**128

    def generate_span_id(self) -> int:
        return 0


def test_invalid_ids_give_the_same_invalid_span_context_as_the_sdk() -> None:
    """Ids a custom generator gets wrong make a span context the SDK also calls invalid:
    the lean path computes validity instead of assuming it."""
    contexts = []
    for provider_cls in (LeanTracerProvider, TracerProvider):
        provider = provider_cls(id_generator=_InvalidIds(), shutdown_on_exit=False)
        span = provider.get_tracer("t").start_span("op")
        contexts.append(span.get_span_context())
        span.end()
        provider.shutdown()
    lean, stock = contexts
    assert lean == stock
    assert not lean.is_valid


def test_setup_builds_a_lean_tracer_provider() -> None:
    """setup() installs a LeanTracerProvider whose tracers make lean spans (the conftest
    fixture resets unified_obs afterwards)."""
    handle = unified_obs.setup(
        environ={},
        service_name="svc",
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        handle_signals=False,
    )
    provider = handle.tracer_provider
    assert isinstance(provider, LeanTracerProvider)
    tracer = provider.get_tracer("app")
    assert type(tracer) is LeanTracer
    with tracer.start_as_current_span("op") as span:
        assert type(span) is LeanSpan


# --- past differences from the stock SDK, now matched ---


@pytest.mark.parametrize(
    ("sampler", "counting_ids", "traceparent"),
    [
        pytest.param(ALWAYS_ON, False, None, id="random-ids-sampled"),
        pytest.param(ALWAYS_OFF, False, None, id="random-ids-dropped"),
        pytest.param(
            ALWAYS_ON, True, f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-03", id="parent-03"
        ),
    ],
)
def test_trace_flags_match_the_sdk(
    pairs: _Pairs, sampler: Sampler, counting_ids: bool, traceparent: str | None
) -> None:
    """Spans carry the SDK's trace flags: with the default random id generator, and under
    a parent whose flags say its trace id is random."""
    lean = pairs.side(LeanTracerProvider, sampler=sampler, counting_ids=counting_ids)
    stock = pairs.side(TracerProvider, sampler=sampler, counting_ids=counting_ids)
    flags: list[int] = []
    for side in (lean, stock):
        context = None if traceparent is None else propagate.extract({"traceparent": traceparent})
        span = side.tracer.start_span("op", context=context)
        flags.append(int(span.get_span_context().trace_flags))
        span.end()
    assert flags[0] == flags[1]


@pytest.mark.skipif(
    SDK < (1, 41),
    reason="the SDK's own exported spans cannot be deep-copied before 1.41",
)
def test_exported_spans_deep_copy_like_the_sdk(pairs: _Pairs) -> None:
    """An exported span can be deep-copied, as the SDK's exported ReadableSpan can."""

    def scenario(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("op", attributes={"k": 1}, start_time=T0)
        span.add_event("e", timestamp=T0 + 1)
        span.end(end_time=T0 + 2)

    lean, stock = pairs.run(scenario)
    _assert_same([copy.deepcopy(s) for s in lean], [copy.deepcopy(s) for s in stock])


@pytest.mark.parametrize(
    "name",
    [
        "parentbased_always_on",
        "always_on",
        "parentbased_always_off",
        "always_off",
        "parentbased_traceidratio",
        "traceidratio",
    ],
)
@pytest.mark.parametrize(
    "traceparent",
    [None, TRACEPARENT, UNSAMPLED_TRACEPARENT, f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-03"],
)
def test_decide_shortcut_matches_the_samplers_own_results(
    pairs: _Pairs, name: str, traceparent: str | None
) -> None:
    """Our samplers' ``decide(parent, trace_id)`` shortcut gives the spans (recording or
    not, flags, trace state, attributes) the sampler's own ``should_sample`` gives on the
    stock SDK.  At ratio 0.5 a new trace (counting ids, low) is sampled and the parent's
    trace id (low 64 bits above 2**63) is not, so both ratio outcomes are covered."""
    closable = ClosableSampler(build_sampler(name, 0.5))
    assert closable.decide is not None
    lean = pairs.side(LeanTracerProvider, sampler=closable)
    stock = pairs.side(TracerProvider, sampler=build_sampler(name, 0.5))
    carrier = {"traceparent": traceparent, "tracestate": "k=v"} if traceparent else {}
    contexts = []
    for side in (lean, stock):
        span = side.tracer.start_span("op", propagate.extract(carrier), attributes={"a": 1})
        contexts.append((span.is_recording(), _context(span.get_span_context())))
        span.end()
    assert contexts[0] == contexts[1]
    _assert_same(lean.finished(), stock.finished(), clock=False)


def test_closed_sampler_drops_through_the_shortcut(pairs: _Pairs) -> None:
    """A closed sampler (after shutdown) makes the lean tracer drop every span; reopened,
    it samples again."""
    closable = ClosableSampler(build_sampler("parentbased_always_on", 1.0))
    side = pairs.side(LeanTracerProvider, sampler=closable)
    closable.closed = True
    assert not side.tracer.start_span("dropped").is_recording()
    closable.closed = False
    assert side.tracer.start_span("kept").is_recording()


def test_other_samplers_offer_no_shortcut() -> None:
    """Custom samplers, ``ParentBased`` with delegates other than the defaults, and
    subclasses of ``ParentBased`` (they may decide otherwise under the same description)
    have no ``decide``: the sampler's own ``should_sample`` runs."""
    assert ClosableSampler(ParentBased(ALWAYS_OFF, local_parent_sampled=ALWAYS_OFF)).decide is None
    ratio = TraceIdRatioBased(0.5)
    assert ClosableSampler(ParentBased(ratio, remote_parent_not_sampled=ALWAYS_ON)).decide is None
    assert ClosableSampler(ParentBased(ratio, local_parent_sampled=ratio)).decide is None

    class Stricter(ParentBased):  # same description, its own decisions
        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            return SamplingResult(Decision.DROP)

    assert ClosableSampler(Stricter(ratio)).decide is None
    assert ClosableSampler(Stricter(ALWAYS_ON)).decide is None


@pytest.mark.parametrize(
    ("name", "rate"),
    [(name, rate) for name in ("traceidratio", "parentbased_traceidratio")
     for rate in (0.0, 0.001, 0.25, 0.5, 1.0)]
    + [(name, 0.5) for name in ("always_on", "parentbased_always_on", "always_off",
                                "parentbased_always_off")],
)  # fmt: skip
def test_decide_equals_the_samplers_decision_for_every_parent_and_id(
    name: str, rate: float
) -> None:
    """For trace ids across the 64-bit range (either side of a ratio's bound, high bits
    set or not) and every kind of parent, each built-in sampler's ``decide`` equals the
    decision of its own ``should_sample``."""
    sampler = build_sampler(name, rate)
    decide = ClosableSampler(sampler).decide
    assert decide is not None
    bound = TraceIdRatioBased(rate).bound
    low = [0, 1, bound - 1, bound, bound + 1, 2**63, 2**64 - 1, 0x8448EB211C80319C]
    ids = [high << 64 | x for high in (0, 0x0AF7651916CD43DD) for x in low if 0 <= x < 2**64]
    parents = [None] + [
        SpanContext(TRACE_ID, PARENT_SPAN_ID, is_remote=remote, trace_flags=TraceFlags(flags))
        for remote in (True, False)
        for flags in (0, 1)
    ]
    for parent in parents:
        context = (
            None if parent is None else trace_api.set_span_in_context(NonRecordingSpan(parent))
        )
        for trace_id in ids:
            expected = sampler.should_sample(context, trace_id, "op").decision
            assert decide(parent, trace_id) is expected, (parent, hex(trace_id))


@pytest.mark.skipif(SDK < (1, 40), reason="the SDK has span metrics from 1.40 on")
def test_sdk_span_metrics_are_kept_when_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the SDK's own span metrics switched on, lean spans count as started and live
    exactly as stock SDK spans do (the lean tracer skips them only when they are no-ops)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    points: list[dict[str, int]] = []
    for provider_cls in (LeanTracerProvider, TracerProvider):
        reader = InMemoryMetricReader()
        meters = MeterProvider(metric_readers=[reader])
        provider = provider_cls(meter_provider=meters, shutdown_on_exit=False)
        tracer = provider.get_tracer("t")
        tracer.start_span("ended").end()
        tracer.start_span("still-live")
        data = reader.get_metrics_data()
        assert data is not None
        points.append(
            {
                metric.name: sum(int(p.value) for p in metric.data.data_points)  # type: ignore[union-attr,misc]
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
            }
        )
        provider.shutdown()
        meters.shutdown()
    assert points[0] == points[1]
    assert points[0]["otel.sdk.span.started"] == 2
    assert points[0]["otel.sdk.span.live"] == 1
