"""``timed``, ``counted``, ``span``, ``record_args``, exemplars and sampling: when no
span is sampled the decorators skip span work and still record metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import StatusCode

import unified_obs as obs
from unified_obs import ConfigError, metrics
from unified_obs.redact import REDACTED
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


def duration_sum(function: str) -> float | None:
    """The ``function_duration_seconds_sum`` of the ok series of ``function``."""
    return metrics.value(
        "function_duration_seconds_sum", function=function, module=MODULE, outcome="ok"
    )


@obs.timed
def render_page() -> str:
    """Timed only."""
    return "<html>"


@obs.counted("jobs.run")
def run_job() -> None:
    """Counted only, under a chosen name."""


def test_timed_records_duration_only() -> None:
    """``@timed`` observes the duration histogram, makes no span and no calls counter."""
    with capture() as cap:
        assert render_page() == "<html>"
        assert timings(cap, "render_page") == 1.0
        assert calls(cap, "render_page") is None
        assert cap.spans == ()


def test_counted_records_calls_only() -> None:
    """``@counted("name")`` counts in a counter of that name and records no duration
    (and nothing in ``function.calls``)."""
    with capture() as cap:
        run_job()
        run_job()
        assert cap.metric("jobs.run", outcome="ok", error_type="") == 2.0
        assert calls(cap, "jobs.run") is None
        assert timings(cap, "jobs.run") is None


def test_name_by_keyword() -> None:
    """``timed(name=...)``/``counted(name=...)`` work like the positional form."""

    @obs.timed(name="report.render")
    def report() -> None:
        pass

    with capture() as cap:
        report()
        with obs.counted(name="report.sent"):
            pass
        assert timings(cap, "report.render") == 1.0
        assert cap.metric("report.sent", outcome="ok", error_type="") == 1.0


def test_timed_coroutine_measures_the_await() -> None:
    """On a coroutine the duration covers the awaited body, not the coroutine creation."""

    @obs.timed
    async def slow() -> None:
        await asyncio.sleep(0.02)

    with capture():
        asyncio.run(slow())
        elapsed = duration_sum(slow.__qualname__)
        assert elapsed is not None
        assert elapsed >= 0.02


def test_timed_and_counted_on_other_kinds_of_callables() -> None:
    """Generators, async generators and methods are measured over their whole run."""

    class Feed:
        @obs.counted
        def rows(self) -> Iterator[int]:
            yield from (1, 2)

        @obs.timed
        async def events(self) -> AsyncIterator[int]:
            yield 1

    async def consume() -> list[int]:
        return [e async for e in Feed().events()]

    with capture() as cap:
        assert list(Feed().rows()) == [1, 2]
        assert asyncio.run(consume()) == [1]
        assert calls(cap, Feed.rows.__qualname__) == 1.0
        assert timings(cap, Feed.events.__qualname__) == 1.0
        assert cap.spans == ()


def test_timed_and_counted_as_context_managers() -> None:
    """``with timed("name")``/``with counted("name")`` measure a block; an exception in
    the block is counted as an error and propagates."""
    with capture() as cap:
        with obs.timed("cache.rebuild"):
            pass
        with pytest.raises(OSError, match="disk"), obs.counted("cache.write"):
            raise OSError("disk full")
        assert timings(cap, "cache.rebuild") == 1.0
        assert cap.metric("cache.write", outcome="error", error_type="OSError") == 1.0


def test_unnamed_block_is_named_after_its_function() -> None:
    """``with timed():`` without a name takes the enclosing function's qualified name."""

    def rebuild_index() -> None:
        with obs.timed():
            pass

    with capture() as cap:
        rebuild_index()
        assert timings(cap, rebuild_index.__qualname__) == 1.0


def test_shared_timer_is_reentrant() -> None:
    """One ``timed`` object shared by nested blocks and by threads records every block."""
    timer = obs.timed("shared")
    barrier = threading.Barrier(4)

    def work() -> None:
        with timer:
            barrier.wait(timeout=5)

    with capture() as cap:
        with timer, timer:
            pass
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        assert timings(cap, "shared") == 6.0


def test_span_block() -> None:
    """``span(name, **attributes)`` makes a current span for the block, child of the
    caller's span; decorated calls inside are its children."""

    @obs.traced
    def step() -> None:
        pass

    with capture() as cap:
        with obs.span("load-config", path="/etc/app.toml", retries=2) as span:
            assert trace.get_current_span() is span
            span.set_attribute("found", True)
            step()
        block = cap.span("load-config")
        assert dict(block.attributes or {}) == {
            "path": "/etc/app.toml",
            "retries": 2,
            "found": True,
        }
        child = cap.span(step.__qualname__)
        assert child.parent is not None
        assert child.parent.span_id == block.context.span_id
        assert trace.get_current_span() is trace.INVALID_SPAN


def test_span_block_records_errors_and_supports_async_with() -> None:
    """An exception leaving the block marks the span Error and propagates; ``async with``
    behaves the same."""

    async def main() -> None:
        async with obs.span("async-block"):
            await asyncio.sleep(0)

    with capture() as cap:
        with pytest.raises(ValueError, match="bad"), obs.span("failing"):
            raise ValueError("bad")
        asyncio.run(main())
        assert cap.span("failing").status.status_code is StatusCode.ERROR
        assert cap.span("failing").attributes["error.type"] == "ValueError"  # type: ignore[index]
        assert cap.span("async-block").status.status_code is StatusCode.UNSET


class Account:
    """A class whose methods record arguments."""

    @obs.traced(record_args=("user_id", "password", "profile", "note"))
    def login(self, user_id: int, password: str, profile: object = None, note: str = "") -> bool:
        """Record the user, never the password."""
        return True


def test_record_args_are_redacted_and_bounded() -> None:
    """Chosen arguments become ``arg.<name>`` attributes: sensitive names redacted,
    sensitive keys inside mappings redacted, long values cut, defaults recorded."""
    with capture() as cap:
        Account().login(
            7, "hunter2", profile={"name": "a", "api_key": "k", "nested": {"token": "t"}}
        )
        Account.login(Account(), user_id=8, password="x", note="n" * 1000)
        first, second = cap.spans
        assert first.attributes["arg.user_id"] == 7  # type: ignore[index]
        assert first.attributes["arg.password"] == REDACTED  # type: ignore[index]
        profile = str(first.attributes["arg.profile"])  # type: ignore[index]
        assert "'name': 'a'" in profile
        assert "'k'" not in profile
        assert "'t'" not in profile
        assert profile.count(REDACTED) == 2
        assert first.attributes["arg.note"] == ""  # type: ignore[index]
        assert second.attributes["arg.user_id"] == 8  # type: ignore[index]
        note = str(second.attributes["arg.note"])  # type: ignore[index]
        assert len(note) == 256
        assert note.endswith("...")


def test_record_args_uses_setup_redact_keys() -> None:
    """Extra sensitive names configured in ``setup(redact_keys=...)`` apply too."""

    @obs.traced(record_args=("tenant",))
    def handle(tenant: str) -> None:
        pass

    with capture(redact_keys=("tenant",)) as cap:
        handle("acme")
        assert cap.spans[0].attributes["arg.tenant"] == REDACTED  # type: ignore[index]


def test_record_args_rejects_unknown_names() -> None:
    """A name the function does not accept is a configuration error at decoration time."""
    with pytest.raises(ConfigError, match="record_args"):

        @obs.traced(record_args=("usr_id",))
        def handler(user_id: int) -> None:
            pass


def test_record_args_error_names_the_function_and_every_unknown_name() -> None:
    """On a function already wrapped by another decorator, the error names the function
    (module and qualified name, never a wrapper's repr), its recordable parameters and
    every unknown name; ``*args``/``**kwargs`` cannot be recorded."""

    @obs.timed
    def handler(user_id: int, *rest: int, **extra: int) -> None:
        pass

    with pytest.raises(ConfigError) as raised:
        obs.traced(record_args=("usr_id", "user_id", "extra", "tenant"))(handler)
    message = str(raised.value)
    assert f"{__name__}.{handler.__qualname__}(user_id)" in message
    assert message.endswith("it has no parameter 'usr_id', 'extra', 'tenant'")
    assert "Wrapper" not in message
    assert " at 0x" not in message


@obs.traced
def work() -> int:
    """A decorated unit of work for the sampling tests."""
    return 1


def test_exemplar_points_at_the_span() -> None:
    """The duration observation carries the call's own trace id as an exemplar."""
    with capture() as cap:
        work()
        span = cap.span("work")
        _, _, body = metrics.render("application/openmetrics-text; version=1.0.0")
        line = next(
            row
            for row in body.decode().splitlines()
            if row.startswith("function_duration_seconds_bucket")
            and 'function="work"' in row
            and "trace_id" in row
        )
        assert format(span.context.trace_id, "032x") in line
        assert format(span.context.span_id, "016x") in line


def test_sampled_out_root_records_metrics_without_span() -> None:
    """With a ratio of 0, calls make no span but are counted and timed."""
    with capture(traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.0) as cap:
        for _ in range(3):
            work()
        assert cap.spans == ()
        assert calls(cap, "work") == 3.0
        assert timings(cap, "work") == 3.0


def _unsampled_parent() -> trace.NonRecordingSpan:
    return trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(0))
    )


def _current(span: trace.Span) -> Iterator[None]:
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


def test_unsampled_parent_skips_the_span_and_keeps_its_trace() -> None:
    """Inside a trace that is not sampled no child span is made, metrics are recorded and
    the function still sees the incoming trace (its logs carry that trace id)."""
    seen: list[int] = []

    @obs.traced
    def inside() -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    with capture() as cap:
        for _ in _current(_unsampled_parent()):
            inside()
            inside()
        assert cap.spans == ()
        assert seen == [0xABC, 0xABC]
        assert calls(cap, inside.__qualname__) == 2.0


def test_sampled_parent_overrides_ratio_zero() -> None:
    """ParentBased: with a sampled parent, a ratio of 0 still records the child span."""
    parent = trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1))
    )
    with capture(traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.0) as cap:
        for _ in _current(parent):
            work()
        assert [s.context.trace_id for s in cap.spans] == [0xABC]


def test_sampler_that_ignores_the_parent_is_asked() -> None:
    """A sampler that is not ParentBased decides for itself: under an unsampled parent,
    ``always_on`` still records the span (no skipping behind its back)."""
    with capture(traces_sampler="always_on") as cap:
        for _ in _current(_unsampled_parent()):
            work()
        assert [s.name for s in cap.spans] == ["work"]


def test_span_block_skipped_in_unsampled_trace() -> None:
    """``span()`` inside an unsampled trace returns the current (non-recording) span."""
    parent = _unsampled_parent()
    with capture() as cap:
        for _ in _current(parent):
            with obs.span("ad-hoc") as span:
                assert span is parent
        assert cap.spans == ()
