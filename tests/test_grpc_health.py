"""``grpc.health.v1`` from the health registry, and graceful shutdown of real gRPC servers:
readiness and drain flip the health status, ``server.stop(grace)`` finishes in-flight calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.test_grpc_support import (
    METHODS,
    aio_server,
    call_aio,
    call_sync,
    sync_server,
    wait_async,
    wait_until,
)
from unified_obs import lifecycle
from unified_obs.grpc import (
    add_health_servicer,
    aio_server_interceptor,
    register_server,
    server_interceptor,
)
from unified_obs.lifecycle import inflight
from unified_obs.testing import Captured, capture

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class Flag:
    """A readiness check whose answer the test sets."""

    def __init__(self) -> None:
        self.ok = True

    def __call__(self) -> bool:
        return self.ok


def add_db_check(cap: Captured) -> Flag:
    """Register a critical, uncached readiness check called ``db``."""
    flag = Flag()
    cap.telemetry.health.add_check("db", flag, success_ttl=0.0, failure_ttl=0.0)
    return flag


def check(channel: grpc.Channel, service: str = "") -> int:
    """The status ``Check`` reports for ``service``."""
    stub = health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(answer.status)


@contextmanager
def health_server(cap: Captured) -> Iterator[tuple[grpc.Server, grpc.Channel]]:
    """A sync server with the health servicer (``test.Echo`` reports readiness)."""
    with sync_server([server_interceptor()]) as (server, target):
        add_health_servicer(server, cap.telemetry, services=["test.Echo"], interval=0.05)
        with grpc.insecure_channel(target) as channel:
            yield server, channel


def test_sync_check_and_list_reflect_readiness() -> None:
    """Check: NOT_SERVING until started, SERVING when ready, NOT_SERVING when a critical
    readiness check fails; a check's name reports that check; unknown names are NOT_FOUND."""
    with capture(handle_signals=False) as cap, health_server(cap) as (_, channel):
        flag = add_db_check(cap)
        assert check(channel) == NOT_SERVING  # start-up not complete yet
        cap.telemetry.health.mark_started()
        assert [check(channel, s) for s in ("", "test.Echo", "db")] == [SERVING] * 3
        flag.ok = False
        assert [check(channel, s) for s in ("", "test.Echo", "db")] == [NOT_SERVING] * 3
        with pytest.raises(grpc.RpcError) as unknown:
            check(channel, "no.Such")
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        listing = health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest())
        statuses = {name: answer.status for name, answer in listing.statuses.items()}
        assert statuses == {"": NOT_SERVING, "test.Echo": NOT_SERVING, "db": NOT_SERVING}


@pytest.mark.asyncio
async def test_aio_check_and_list_reflect_readiness() -> None:
    """grpc.aio: the same statuses, with probes run on the event loop."""
    with capture(handle_signals=False) as cap:
        async with aio_server() as (server, target):
            add_health_servicer(server, cap.telemetry, services=["test.Echo"])
            async with grpc.aio.insecure_channel(target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)

                async def status(service: str) -> int:
                    request = health_pb2.HealthCheckRequest(service=service)
                    return int((await stub.Check(request, timeout=5)).status)

                flag = add_db_check(cap)
                assert await status("") == NOT_SERVING
                cap.telemetry.health.mark_started()
                assert [await status(s) for s in ("", "test.Echo", "db")] == [SERVING] * 3
                flag.ok = False
                assert await status("") == NOT_SERVING
                assert await status("db") == NOT_SERVING
                with pytest.raises(grpc.aio.AioRpcError) as unknown:
                    await status("no.Such")
                assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
                listing = await stub.List(health_pb2.HealthListRequest(), timeout=5)
                assert set(listing.statuses) == {"", "test.Echo", "db"}


def test_sync_watch_streams_changes_and_ends_when_draining() -> None:
    """Watch sends the current status, then every change; when shutdown begins it sends
    NOT_SERVING and ends the stream cleanly.  Unknown services watch as SERVICE_UNKNOWN."""
    with capture(handle_signals=False) as cap, health_server(cap) as (_, channel):
        flag = add_db_check(cap)
        cap.telemetry.health.mark_started()
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        seen = [next(watch).status]
        flag.ok = False
        seen.append(next(watch).status)
        flag.ok = True
        seen.append(next(watch).status)
        unknown = stub.Watch(health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
        assert next(unknown).status == SERVICE_UNKNOWN
        unknown.cancel()
        cap.telemetry.health.start_draining()
        seen.extend(answer.status for answer in watch)
        assert seen == [SERVING, NOT_SERVING, SERVING, NOT_SERVING]
        assert watch.code() is grpc.StatusCode.OK
        late = stub.Watch(health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
        assert [answer.status for answer in late] == [NOT_SERVING]  # draining already


@pytest.mark.asyncio
async def test_aio_watch_streams_changes_and_ends_at_shutdown() -> None:
    """grpc.aio Watch: SERVING, NOT_SERVING on a failing check, then NOT_SERVING and the end
    of the stream when the telemetry shuts down."""
    with capture(handle_signals=False) as cap:
        async with aio_server() as (server, target):
            add_health_servicer(server, cap.telemetry, interval=0.05)
            async with grpc.aio.insecure_channel(target) as channel:
                flag = add_db_check(cap)
                cap.telemetry.health.mark_started()
                stub = health_pb2_grpc.HealthStub(channel)
                watch = stub.Watch(health_pb2.HealthCheckRequest(service="db"), timeout=10)
                seen = [(await watch.read()).status]
                flag.ok = False
                seen.append((await watch.read()).status)
                flag.ok = True
                seen.append((await watch.read()).status)
                await asyncio.to_thread(cap.telemetry.shutdown, 2.0)
                for _ in range(5):  # bounded: the stream ends after NOT_SERVING
                    answer = await watch.read()
                    if answer is grpc.aio.EOF:
                        break
                    seen.append(answer.status)
                assert seen == [SERVING, NOT_SERVING, SERVING, NOT_SERVING]
                assert await watch.code() is grpc.StatusCode.OK


def _run_calls(target: str, count: int) -> tuple[list[threading.Thread], list[Any]]:
    """Start ``count`` slow calls (all four shapes) in threads; results land in the list."""
    results: list[Any] = []
    channel = grpc.insecure_channel(target)

    def one(method: str) -> None:
        results.append(call_sync(channel, method, b"sleep:0.6", timeout=10)[0])

    threads = [threading.Thread(target=one, args=(METHODS[i % 4],)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


@pytest.mark.parametrize("how", ["sequence", "shutdown"])
def test_sync_shutdown_completes_inflight_calls(how: str) -> None:
    """Shutdown with 8 calls in flight: health turns NOT_SERVING (drain), ``server.stop(grace)``
    lets every call finish OK, then the server refuses new calls."""
    with capture(handle_signals=False, drain_timeout=5.0, shutdown_timeout=5.0) as cap:
        server = grpc.server(futures.ThreadPoolExecutor(16), interceptors=[server_interceptor()])
        from tests.test_grpc_support import handlers

        server.add_generic_rpc_handlers((handlers(aio=False),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        add_health_servicer(server, cap.telemetry)
        register_server(server, cap.telemetry, grace=5.0)
        target = f"127.0.0.1:{port}"
        with grpc.insecure_channel(target) as probe:
            assert check(probe) == SERVING  # register_server marked start-up complete
            threads, results = _run_calls(target, 8)
            wait_until(lambda: inflight.count == 8)
            run = lifecycle.run_shutdown_sequence if how == "sequence" else cap.telemetry.shutdown
            stopper = threading.Thread(target=run)
            stopper.start()
            if how == "sequence":  # during the drain the listener still answers health
                wait_until(lambda: check(probe) == NOT_SERVING)
            for thread in threads:
                thread.join(10)
            stopper.join(10)
            assert results == [grpc.StatusCode.OK] * 8
            refused = call_sync(probe, "UnaryUnary", b"echo", timeout=2)[0]
            assert refused is grpc.StatusCode.UNAVAILABLE
        assert inflight.count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["sequence", "shutdown"])
async def test_aio_shutdown_completes_inflight_calls(how: str) -> None:
    """grpc.aio: shutdown run off the loop (the graceful sequence with its drain, or a plain
    ``tel.shutdown()``) stops the server on its own loop; all 8 in-flight calls finish OK."""
    with capture(handle_signals=False, drain_timeout=5.0, shutdown_timeout=5.0) as cap:
        async with aio_server([aio_server_interceptor()]) as (server, target):
            add_health_servicer(server, cap.telemetry)
            register_server(server, cap.telemetry, grace=5.0)
            async with grpc.aio.insecure_channel(target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                request = health_pb2.HealthCheckRequest(service="")
                assert (await stub.Check(request, timeout=5)).status == SERVING
                calls = [
                    asyncio.ensure_future(call_aio(channel, METHODS[i % 4], b"sleep:0.6"))
                    for i in range(8)
                ]
                await wait_async(lambda: inflight.count == 8)
                run = (
                    lifecycle.run_shutdown_sequence if how == "sequence" else cap.telemetry.shutdown
                )
                stopping = asyncio.ensure_future(asyncio.to_thread(run))
                if how == "sequence":  # during the drain the listener still answers health
                    await wait_async(lambda: cap.telemetry.health.draining)
                    assert (await stub.Check(request, timeout=5)).status == NOT_SERVING
                results = await asyncio.gather(*calls)
                outcome = await stopping
                refused = await call_aio(channel, "UnaryUnary", b"echo", timeout=2)
        assert [result[0] for result in results] == [grpc.StatusCode.OK] * 8
        assert refused[0] is grpc.StatusCode.UNAVAILABLE
        assert outcome is not None
        assert outcome.outcomes["hook:grpc-server"] == "ok"
        assert inflight.count == 0


def test_register_server_needs_the_servers_loop_for_aio() -> None:
    """An aio server registered outside its event loop is a setup error, said at once."""
    from unified_obs.errors import ConfigError

    loop = asyncio.new_event_loop()
    try:
        server = loop.run_until_complete(_make_aio_server())
        with capture(handle_signals=False) as cap, pytest.raises(ConfigError, match="event loop"):
            register_server(server, cap.telemetry)
        loop.run_until_complete(server.stop(None))
    finally:
        loop.close()


async def _make_aio_server() -> Any:
    return grpc.aio.server()
