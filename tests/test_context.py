"""Request-scoped fields and trace identity: isolation across tasks, threads and executors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import trace

import unified_obs as obs
from unified_obs.testing import capture

_TASKS = 1_000


def test_bind_unbind_and_bound() -> None:
    """bind adds, unbind removes, bound restores what was there before."""
    obs.bind(tenant="acme", region="eu")
    with obs.bound(request_id="r1", tenant="other"):
        assert obs.bound_fields() == {"tenant": "other", "region": "eu", "request_id": "r1"}
    assert obs.bound_fields() == {"tenant": "acme", "region": "eu"}
    obs.unbind("region", "missing")
    assert obs.bound_fields() == {"tenant": "acme"}


def test_bound_restores_fields_after_an_exception() -> None:
    """An exception inside bound() does not leak its fields."""
    with pytest.raises(KeyError), obs.bound(request_id="r1"):
        raise KeyError("x")
    assert "request_id" not in obs.bound_fields()


def test_bound_fields_are_read_only() -> None:
    """The mapping handed out cannot be changed behind the context's back."""
    obs.bind(a=1)
    fields: Any = obs.bound_fields()
    with pytest.raises(TypeError):
        fields["a"] = 2


def test_bind_shared_merges_and_never_changes_the_shared_dict() -> None:
    """``bind_shared`` binds a caller's constant dict: used as it is when nothing is bound,
    merged into a copy when fields are; later binds and resets never change it."""
    from unified_obs.context import bind_shared, reset

    shared = {"rpc.method": "pkg.Svc/Call"}
    token = bind_shared(shared)
    assert obs.bound_fields() == shared
    with obs.bound(request_id="r1"):
        assert obs.bound_fields() == {"rpc.method": "pkg.Svc/Call", "request_id": "r1"}
    reset(token)
    assert obs.bound_fields() == {}
    with obs.bound(tenant="acme"):
        inner = bind_shared(shared)
        assert obs.bound_fields() == {"tenant": "acme", "rpc.method": "pkg.Svc/Call"}
        reset(inner)
    assert shared == {"rpc.method": "pkg.Svc/Call"}


def test_current_trace_ids_follow_the_current_span() -> None:
    """current_trace_ids is None outside a span and the span's hex ids inside."""
    assert obs.current_trace_ids() is None
    with capture(), trace.get_tracer("t").start_as_current_span("s") as span:
        ctx = span.get_span_context()
        assert obs.current_trace_ids() == (
            format(ctx.trace_id, "032x"),
            format(ctx.span_id, "016x"),
        )


async def _one_request(i: int, tracer: trace.Tracer) -> tuple[int, str, str]:
    log = obs.get_logger("req")
    with tracer.start_as_current_span(f"request-{i}") as span, obs.bound(request=i):
        log.info("start", i=i)
        await asyncio.sleep(0)
        log.info("middle", i=i)
        await asyncio.sleep(0)
        log.info("end", i=i)
        ctx = span.get_span_context()
    return i, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


async def _many_requests() -> list[tuple[int, str, str]]:
    tracer = trace.get_tracer("t")
    return list(await asyncio.gather(*(_one_request(i, tracer) for i in range(_TASKS))))


def test_thousand_concurrent_tasks_have_zero_cross_talk() -> None:
    """1,000 interleaved asyncio tasks, each in its own span with its own bound field:
    every line carries exactly its own task's ids and field."""
    with capture() as cap:
        results = asyncio.run(_many_requests())
        records = [r for r in cap.logs if r.get("logger") == "req"]
    expected = {i: (trace_id, span_id) for i, trace_id, span_id in results}
    assert len({trace_id for trace_id, _ in expected.values()}) == _TASKS
    assert len(records) == 3 * _TASKS
    mismatched = [
        r
        for r in records
        if r["request"] != r["i"] or (r["trace_id"], r["span_id"]) != expected[r["i"]]
    ]
    assert mismatched == []
    assert obs.bound_fields() == {}


def _report() -> tuple[tuple[str, str] | None, Mapping[str, Any], str]:
    obs.get_logger("worker").info("in thread")
    return obs.current_trace_ids(), dict(obs.bound_fields()), threading.current_thread().name


def test_wrap_context_carries_span_and_fields_into_a_thread_pool() -> None:
    """wrap_context hands the span and bound fields to a pool thread; without it they are lost;
    nothing leaks into the next job on the same thread."""
    with capture() as cap, ThreadPoolExecutor(max_workers=1) as pool:
        with trace.get_tracer("t").start_as_current_span("parent"), obs.bound(tenant="acme"):
            ids = obs.current_trace_ids()
            wrapped = pool.submit(obs.wrap_context(_report)).result()
            bare = pool.submit(_report).result()
        after = pool.submit(_report).result()
        thread_lines = [r for r in cap.logs if r.get("logger") == "worker"]
    assert wrapped[0] == ids
    assert wrapped[1] == {"tenant": "acme"}
    assert wrapped[2] != threading.current_thread().name
    assert bare[:2] == (None, {})
    assert after[:2] == (None, {})
    assert ids is not None
    assert thread_lines[0]["trace_id"] == ids[0]
    assert thread_lines[0]["tenant"] == "acme"
    assert "trace_id" not in thread_lines[1]


async def _in_executor() -> tuple[tuple[str, str] | None, tuple[str, str] | None, Any]:
    loop = asyncio.get_running_loop()
    with trace.get_tracer("t").start_as_current_span("async-parent"), obs.bound(job="j1"):
        ids = obs.current_trace_ids()
        result = await loop.run_in_executor(None, obs.wrap_context(_report))
    return ids, result[0], result[1]


def test_wrap_context_with_run_in_executor() -> None:
    """run_in_executor(None, wrap_context(fn)) runs fn with the caller's span and fields."""
    with capture():
        ids, seen_ids, seen_fields = asyncio.run(_in_executor())
    assert ids is not None
    assert seen_ids == ids
    assert seen_fields == {"job": "j1"}


def test_run_in_context_binds_arguments() -> None:
    """run_in_context returns a zero-argument callable that runs in the caller's context."""
    from unified_obs.context import run_in_context

    def add(a: int, b: int) -> tuple[int, Mapping[str, Any]]:
        return a + b, dict(obs.bound_fields())

    with obs.bound(user="u1"):
        job = run_in_context(add, 2, b=3)
    result: list[tuple[int, Mapping[str, Any]]] = []
    thread = threading.Thread(target=lambda: result.append(job()))
    thread.start()
    thread.join(5)
    assert result == [(5, {"user": "u1"})]


def _thread_request(i: int) -> tuple[int, str]:
    with trace.get_tracer("t").start_as_current_span(f"thread-{i}") as span:
        with obs.bound(request=i):
            for step in range(3):
                obs.get_logger("threaded").info("step", i=i, step=step)
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert obs.bound_fields() == {}  # nothing left behind for the next request
    return i, trace_id


def test_thread_pool_requests_have_zero_cross_talk() -> None:
    """300 requests on a 16-thread pool (a WSGI server's shape): every line carries its own
    request's trace id and field, and no field survives into the next request."""
    with capture() as cap, ThreadPoolExecutor(max_workers=16) as pool:
        expected = dict(pool.map(_thread_request, range(300)))
        records = [r for r in cap.logs if r.get("logger") == "threaded"]
    assert len(records) == 900
    assert [r for r in records if r["request"] != r["i"]] == []
    assert [r for r in records if r["trace_id"] != expected[r["i"]]] == []


async def _spawn_background() -> tuple[tuple[str, str] | None, Any]:
    seen: list[tuple[tuple[str, str] | None, Any]] = []

    async def background() -> None:
        await asyncio.sleep(0)
        seen.append((obs.current_trace_ids(), dict(obs.bound_fields())))

    with trace.get_tracer("t").start_as_current_span("request"), obs.bound(job="j2"):
        ids = obs.current_trace_ids()
        task = asyncio.create_task(background())
    await task  # runs after the request's span and fields were closed in the parent
    assert seen[0][0] == ids
    return seen[0]


def test_background_task_keeps_the_request_context() -> None:
    """A task spawned inside a request keeps the request's span and fields, even when it runs
    after the request's block has ended."""
    with capture():
        ids, fields = asyncio.run(_spawn_background())
    assert ids is not None
    assert fields == {"job": "j2"}


def test_with_span_equals_set_span_in_context() -> None:
    """``with_span`` gives the context ``trace.set_span_in_context`` gives, with an explicit
    parent context and with the current one."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    from unified_obs.context import attach_otel_context, detach_otel_context, with_span

    span = trace.NonRecordingSpan(trace.SpanContext(1, 2, is_remote=False))
    parent = otel_context.set_value("k", "v")
    assert with_span(span, parent) == trace.set_span_in_context(span, parent)
    token = attach_otel_context(parent)
    try:
        assert otel_context.get_current() == parent
        assert with_span(span, None) == trace.set_span_in_context(span)
        assert trace.get_current_span(with_span(span, None)) is span
    finally:
        detach_otel_context(token)
    assert otel_context.get_value("k") is None
