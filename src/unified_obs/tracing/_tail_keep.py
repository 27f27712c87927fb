"""Keep the interesting traces the head sampler dropped: errors and slow requests.

A head sampler decides when a request starts, before anyone knows whether it will fail.
Here a root the head sampler drops (and a span whose remote parent was not sampled) is
*recorded* instead (``RECORD_ONLY``: a real span, not sampled, so no exporter sees it and
its children stay non-recording), and decided at its end: when its status is ERROR, or
it lasted at least ``slower_than`` seconds, a sampled copy goes on to the processor
:class:`PromotingProcessor` wraps (the batch processor), with ``sampling.promoted_reason``
= ``error`` or ``latency``.  Its ``ot`` threshold is
erased (a promoted span is not a probability sample, so it must not be counted as one).
At most ``per_second`` spans are promoted per second (a token bucket), so an error storm
cannot flood the exporter.

What this cannot do: the spans of other services and the children of a dropped root are
not recorded, so a promoted trace holds the local root alone (the OpenTelemetry
Collector's tail sampler can keep whole traces, at the price of sampling 100 % at the
head).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from ._threshold import with_threshold

__all__ = ["PROMOTED_REASON", "PromotingProcessor", "RecordDropped"]

PROMOTED_REASON: Final = "sampling.promoted_reason"
_log: Final = logging.getLogger("unified_obs")
PromotionObserver = Callable[[str], None]
"""Called with ``error``, ``latency`` or ``capped`` for each span kept (or not) at its end."""


class RecordDropped(Sampler):
    """``inner``'s decision, except that a drop becomes ``RECORD_ONLY`` (recorded, not
    sampled) so :class:`PromotingProcessor` can still keep the span at its end."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

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
        """The inner decision; a drop is recorded unsampled, its ``ot`` threshold erased."""
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is not Decision.DROP:
            return result
        state = result.trace_state
        if state is not None and "ot" in state:
            state = with_threshold(state, None)
        return SamplingResult(Decision.RECORD_ONLY, attributes, state)

    def get_description(self) -> str:
        return f"RecordDropped{{{self.inner.get_description()}}}"


class PromotingProcessor(SpanProcessor):
    """Wraps a span processor (the batch processor, a test's in-memory one): sampled spans
    pass through; an unsampled local root that ended in error or slowly is passed as a
    sampled copy, at most ``per_second`` per second."""

    def __init__(
        self,
        inner: SpanProcessor,
        *,
        keep_errors: bool,
        slower_than: float | None,
        per_second: float = 100.0,
        clock: Callable[[], float] = time.monotonic,
        on_promote: PromotionObserver | None = None,
    ) -> None:
        self.inner = inner
        self._keep_errors = keep_errors
        self._slower_than_ns = None if slower_than is None else int(slower_than * 1e9)
        self._rate = per_second
        self._tokens = per_second
        self._last = clock()
        self._clock = clock
        self._lock = threading.Lock()
        self.on_promote = on_promote

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Passed on."""
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Pass ``span`` on if sampled; promote it if it is an unsampled local root worth
        keeping."""
        context = span.context
        if context is None or context.trace_flags.sampled:
            self.inner.on_end(span)
            return
        parent = span.parent
        if parent is not None and not parent.is_remote:
            return  # only the process's root of the request is promoted
        try:
            self._promote(span)
        except Exception:  # ending a span never raises into the app
            _log.warning("unified_obs: could not keep a dropped span", exc_info=True)

    def _promote(self, span: ReadableSpan) -> None:
        reason = self._reason(span)
        if reason is None:
            return
        if not self._take():
            reason = "capped"
        elif (promoted := _promoted(span, reason)) is not None:
            self.inner.on_end(promoted)
        observe = self.on_promote
        if observe is not None:
            observe(reason)

    def _reason(self, span: ReadableSpan) -> str | None:
        if self._keep_errors and span.status.status_code is StatusCode.ERROR:
            return "error"
        limit, start, end = self._slower_than_ns, span.start_time, span.end_time
        if limit is not None and start is not None and end is not None and end - start >= limit:
            return "latency"
        return None

    def _take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def shutdown(self) -> None:
        """Passed on."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Passed on."""
        return bool(self.inner.force_flush(timeout_millis))


def _promoted(span: ReadableSpan, reason: str) -> ReadableSpan | None:
    """A sampled copy of ``span`` that says why it was kept (``None`` if it cannot be made)."""
    context = span.context
    if context is None:
        return None
    flags = TraceFlags(context.trace_flags | TraceFlags.SAMPLED)
    sampled = SpanContext(
        context.trace_id,
        context.span_id,
        is_remote=False,
        trace_flags=flags,
        trace_state=context.trace_state,
    )
    attributes = dict(span.attributes or {})
    attributes[PROMOTED_REASON] = reason
    try:
        return ReadableSpan(
            name=span.name,
            context=sampled,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
    except Exception:  # an SDK whose ReadableSpan takes other arguments: keep nothing
        return None
