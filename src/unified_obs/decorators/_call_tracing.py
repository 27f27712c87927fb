"""Which calls get a span: the tracer of the current provider and the skip rules.

A decorated call makes no span when none would be recorded:

- no SDK provider is installed (before ``setup()``): spans would all be no-ops;
- the current span belongs to a trace that is not sampled and the provider's sampler
  follows its parent (``ParentBased`` with its default drop for unsampled parents), so
  the SDK would return a non-recording span anyway.

Everything else, sampled-out roots included, goes through the SDK.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .._semconv import SCHEMA_URL, library_version
from ..context import SPAN_KEY as _SPAN_KEY
from ..context import current_otel_context

__all__ = ["NoTracing", "Tracing", "global_tracing"]

_OFF: Final = 0
"""No SDK provider: spans would all be no-ops."""
_PARENT_BASED: Final = 1
"""Children of unsampled parents are dropped by the sampler, so they can be skipped."""
_FULL: Final = 2
"""Every call asks the SDK."""


_DROPS_UNSAMPLED_CHILDREN: Final = (
    ",remoteParentNotSampled:AlwaysOffSampler,",
    ",localParentNotSampled:AlwaysOffSampler}",
)


class Tracing:
    """The tracer for the current provider and how much span work a call may skip.

    Resolved lazily and again whenever the global provider changes, so decorators
    applied at import time work before ``setup()`` and pick up the SDK after it.
    """

    __slots__ = ("_explicit", "_provider", "_unsampled", "mode", "tracer")

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._explicit = provider
        self._provider: object = None
        self._unsampled: object = None  # the last unsampled parent span seen
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.mode = _OFF

    def parent_context(self) -> otel_context.Context | None:
        """The current context to start a span in, or ``None`` when no span is needed."""
        try:
            provider = self._explicit or trace.get_tracer_provider()
            if provider is not self._provider:
                self._resolve(provider)
            if self.mode == _OFF:
                return None
            parent_context: otel_context.Context = current_otel_context()
            parent: Span | None = parent_context.get(_SPAN_KEY)  # type: ignore[assignment]
            if parent is None:
                return parent_context
            if parent is self._unsampled:  # every call of one unsampled request: one check
                return None
            if self.mode == _PARENT_BASED and not parent.is_recording():
                span_context = parent.get_span_context()
                if span_context.is_valid and not span_context.trace_flags.sampled:
                    self._unsampled = parent  # immutable verdict: unsampled stays unsampled
                    return None
            return parent_context
        except Exception:  # telemetry must never break the call
            return None

    def _resolve(self, provider: trace.TracerProvider) -> None:
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            self.tracer, self.mode = trace.NoOpTracer(), _OFF
        else:
            self.tracer = provider.get_tracer(
                "unified_obs.decorators", library_version(), schema_url=SCHEMA_URL
            )
            self.mode = _PARENT_BASED if _drops_unsampled_children(provider) else _FULL
        self._unsampled = None
        self._provider = provider  # last: other threads re-resolve until this is set


def _drops_unsampled_children(provider: object) -> bool:
    """Whether the provider's sampler is ``ParentBased`` with the default (drop) decision
    for unsampled parents; read from its description, the only public view of it."""
    sampler = getattr(provider, "sampler", None)
    describe = getattr(sampler, "get_description", None)
    if describe is None:
        return False
    try:
        text = str(describe())
    except Exception:
        return False
    return text.startswith("ParentBased{") and all(p in text for p in _DROPS_UNSAMPLED_CHILDREN)


class NoTracing(Tracing):
    """For metrics-only sites (``timed``, ``counted``): never a span."""

    __slots__ = ()

    def parent_context(self) -> otel_context.Context | None:
        """Always ``None``: no span."""
        return None


global_tracing: Final = Tracing()
"""The tracing of every site without its own ``tracer_provider``."""
