"""Sampling hot paths against their anchors, in the same run.

- the rate-limited root sampler's decision (``ParentBased(RateLimitedSampler)`` at 10x its
  budget, so most roots are dropped and kept roots build a tracestate) against the SDK's
  ``ParentBased(TraceIdRatioBased)`` at the same kept fraction;
- an unsampled request through the ASGI middleware: today's (the head sampler drops it:
  a non-recording span) against the same request with ``traces_keep_errors=True`` (the
  dropped root is recorded unsampled and checked at its end); the issue's budget is at
  most 1.5x.  Both use the same setup, each middleware its own tracer provider with the
  batch processor and a dropping exporter; access lines go to a null stream.
"""

from __future__ import annotations

import random
import sys
from typing import Any, Final

from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import unified_obs
from benchmarks._harness import Group
from benchmarks.bench_middleware import _DropSpans, drive_asgi, null_stream, raw_asgi
from unified_obs import asgi
from unified_obs.config import Settings
from unified_obs.resource import build_resource
from unified_obs.testing import reset
from unified_obs.tracing import LeanBatchSpanProcessor, build_tracer_provider, keeping
from unified_obs.tracing._rate_limited import RateLimitedSampler


class _Roots:
    """Trace ids arriving at 10x the rate-limited sampler's budget on a fake clock."""

    def __init__(self) -> None:
        rng = random.Random(7)
        self.now = 0.0
        self.ids = [rng.getrandbits(128) for _ in range(4096)]
        self.next = 0

    def clock(self) -> float:
        return self.now

    def trace_id(self) -> int:
        self.next = (self.next + 1) & 4095
        self.now += 0.001  # 1,000 roots/s against a budget of 100/s
        return self.ids[self.next]


_roots: Final = _Roots()
_limited: Final = ParentBased(RateLimitedSampler(100, clock=_roots.clock))
_ratio: Final = ParentBased(TraceIdRatioBased(0.1))


def _sampler_group() -> Group:
    return Group(
        "tracing: root sampling decision at 10x the budget (ns per root)",
        cases={
            "SDK ParentBased(TraceIdRatioBased(0.1))": lambda: _ratio.should_sample(
                None, _roots.trace_id(), "root"
            ),
            "ParentBased(RateLimitedSampler(100/s))": lambda: _limited.should_sample(
                None, _roots.trace_id(), "root"
            ),
        },
        anchor="SDK ParentBased(TraceIdRatioBased(0.1))",
    )


class _Env:
    """One setup; two tracer providers that drop every root at the head, one of them
    recording the dropped roots for ``traces_keep_errors``."""

    def __init__(self) -> None:
        self.null = null_stream()
        self.stdout = sys.stdout

    def start(self) -> None:
        reset()
        unified_obs.setup(
            service_name="bench",
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            log_format="json",
            log_stdlib=False,
            handle_signals=False,
        )
        sys.stdout = self.null

    def provider(self, **options: Any) -> Any:
        settings = Settings.from_env(
            {},
            service_name="bench",
            traces_sampler="parentbased_traceidratio",
            traces_sampler_arg=0,
            **options,
        )
        provider = build_tracer_provider(settings, build_resource(settings))
        provider.add_span_processor(keeping(settings, LeanBatchSpanProcessor(_DropSpans())))
        return provider

    def stop(self) -> None:
        sys.stdout = self.stdout
        reset()


def _keep_group() -> Group:
    env = _Env()
    env.start()
    today = asgi.ObservabilityMiddleware(raw_asgi, tracer_provider=env.provider())
    keeping_errors = asgi.ObservabilityMiddleware(
        raw_asgi, tracer_provider=env.provider(traces_keep_errors=True)
    )
    sys.stdout = env.stdout
    return Group(
        "tracing: an unsampled request through the ASGI middleware (per request)",
        cases={
            "raw bare": drive_asgi(raw_asgi),
            "unsampled (head drops it)": drive_asgi(today),
            "unsampled, traces_keep_errors (recorded, kept if it fails)": drive_asgi(
                keeping_errors
            ),
        },
        anchor="raw bare",
        budgets={"unsampled, traces_keep_errors (recorded, kept if it fails)": 1.5},
        budget_anchors={
            "unsampled, traces_keep_errors (recorded, kept if it fails)": (
                "unsampled (head drops it)"
            )
        },
        notes="budget: keeping errors costs at most 1.5x today's unsampled request",
        setup=lambda: setattr(sys, "stdout", env.null),
        teardown=env.stop,
    )


def groups() -> list[Group]:
    """The sampler decision and the unsampled request with and without keeping errors."""
    return [_sampler_group(), _keep_group()]
