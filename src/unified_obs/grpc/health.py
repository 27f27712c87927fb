"""``grpc.health.v1`` (Check, Watch, List) served from the same ``HealthRegistry`` as the
HTTP probes, and the shutdown hook that stops a gRPC server gracefully.

Service ``""`` is the whole server: SERVING while readiness passes.  The gRPC services
named in ``services=`` share that status; a readiness check's name reports that check.
From the start of shutdown (readiness draining, or our hook) everything is NOT_SERVING
and open ``Watch`` streams get that answer and end, so ``server.stop(grace)`` only waits
for real calls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .. import health as _health
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from ..lifecycle import ShutdownHook


class TelemetryHandle(Protocol):
    """What these functions use of the handle ``setup()`` returns."""

    @property
    def health(self) -> _health.HealthRegistry: ...
    @property
    def settings(self) -> Settings: ...
    def on_shutdown(self, hook: ShutdownHook, *, name: str | None = None) -> ShutdownHook: ...


__all__ = ["HealthServicer", "add_health_servicer", "register_server"]

_log: Final = logging.getLogger("unified_obs")
_SERVING: Final[int] = int(health_pb2.HealthCheckResponse.SERVING)
_NOT_SERVING: Final[int] = int(health_pb2.HealthCheckResponse.NOT_SERVING)
_UNKNOWN_SERVICE: Final[int] = int(health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
_TICK: Final = 0.1  # how often Watch looks at the draining flag


class _Status:
    """Readiness as gRPC health statuses (shared by the sync and aio servicers)."""

    def __init__(
        self, registry: _health.HealthRegistry, services: Iterable[str], interval: float
    ) -> None:
        self.registry = registry
        self.services = frozenset({"", *services})
        self.interval = interval
        self.stopping = threading.Event()

    @property
    def closed(self) -> bool:
        """Shutdown began (ours or the registry's drain)."""
        return self.stopping.is_set() or self.registry.draining

    def of(self, service: str, report: _health.HealthReport | None) -> int:
        """The status of ``service`` given a readiness ``report``."""
        if self.closed or report is None:
            return _NOT_SERVING if service in self.services or self.closed else _UNKNOWN_SERVICE
        if report.reason is not None:  # starting or draining: nothing is ready
            return _NOT_SERVING
        if service in self.services:
            return _SERVING if report.ok else _NOT_SERVING
        result = report.checks.get(service)
        if result is None:
            return _UNKNOWN_SERVICE
        return _SERVING if result.ok else _NOT_SERVING

    def listing(self, report: _health.HealthReport | None) -> health_pb2.HealthListResponse:
        """Every known service with its status."""
        names = set(self.services) | set(report.checks if report is not None else ())
        statuses = {name: health_pb2.HealthCheckResponse(status=self.of(name, report))
                    for name in sorted(names)}  # fmt: skip
        return health_pb2.HealthListResponse(statuses=statuses)


def _response(status: int) -> health_pb2.HealthCheckResponse:
    return health_pb2.HealthCheckResponse(status=status)


class HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The servicer for ``grpc.server``."""

    def __init__(self, status: _Status) -> None:
        self._status = status

    def _report(self) -> _health.HealthReport | None:
        return None if self._status.closed else self._status.registry.check_sync("readiness")

    def Check(self, request: Any, context: Any) -> health_pb2.HealthCheckResponse:
        """The current status of ``request.service`` (NOT_FOUND when unknown)."""
        status = self._status.of(request.service, self._report())
        if status == _UNKNOWN_SERVICE:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return _response(status)

    def List(self, request: Any, context: Any) -> health_pb2.HealthListResponse:
        """All known services and their statuses."""
        return self._status.listing(self._report())

    def Watch(self, request: Any, context: Any) -> Iterator[health_pb2.HealthCheckResponse]:
        """The status now and at every change; ends after NOT_SERVING at shutdown."""
        status = self._status
        last, waited = None, status.interval
        while context.is_active():
            closing = status.closed
            if waited >= status.interval or closing:
                current, waited = status.of(request.service, self._report()), 0.0
                if current != last:
                    last = current
                    yield _response(current)
                if closing:
                    return
            status.stopping.wait(_TICK)
            waited += _TICK

    def shutdown(self) -> None:
        """NOT_SERVING from now on; open Watch streams say so and end."""
        self._status.stopping.set()


class AioHealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The servicer for ``grpc.aio.server``; probes run on the loop without blocking it."""

    def __init__(self, status: _Status) -> None:
        self._status = status

    async def _report(self) -> _health.HealthReport | None:
        if self._status.closed:
            return None
        return await self._status.registry.check_async("readiness")

    async def Check(self, request: Any, context: Any) -> health_pb2.HealthCheckResponse:
        """The current status of ``request.service`` (NOT_FOUND when unknown)."""
        status = self._status.of(request.service, await self._report())
        if status == _UNKNOWN_SERVICE:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return _response(status)

    async def List(self, request: Any, context: Any) -> health_pb2.HealthListResponse:
        """All known services and their statuses."""
        return self._status.listing(await self._report())

    async def Watch(
        self, request: Any, context: Any
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now and at every change; ends after NOT_SERVING at shutdown."""
        status = self._status
        last, waited = None, status.interval
        while True:
            closing = status.closed
            if waited >= status.interval or closing:
                current, waited = status.of(request.service, await self._report()), 0.0
                if current != last:
                    last = current
                    yield _response(current)
                if closing:
                    return
            await asyncio.sleep(_TICK)
            waited += _TICK

    def shutdown(self) -> None:
        """NOT_SERVING from now on; open Watch streams say so and end."""
        self._status.stopping.set()


def add_health_servicer(
    server: Any,
    tel: TelemetryHandle | None = None,
    *,
    services: Iterable[str] = (),
    interval: float = 1.0,
) -> HealthServicer | AioHealthServicer:
    """Serve ``grpc.health.v1.Health`` on ``server`` (``grpc`` or ``grpc.aio``) from
    ``tel.health`` (the process-wide registry when ``tel`` is omitted).

    ``services`` are the gRPC service names that report the server's readiness;
    ``interval`` is how often (seconds) ``Watch`` re-runs the readiness probe.  With a
    ``tel``, the servicer turns NOT_SERVING as soon as shutdown begins.
    """
    registry = tel.health if tel is not None else _health.default_registry()
    status = _Status(registry, services, interval)
    servicer: HealthServicer | AioHealthServicer
    if isinstance(server, grpc.aio.Server):
        servicer = AioHealthServicer(status)
    else:
        servicer = HealthServicer(status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    _servicers.setdefault(server, []).append(servicer)
    if tel is not None:
        tel.on_shutdown(servicer.shutdown, name="grpc-health")
    return servicer


_servicers: weakref.WeakKeyDictionary[Any, list[HealthServicer | AioHealthServicer]] = (
    weakref.WeakKeyDictionary()
)


def register_server(
    server: Any,
    tel: TelemetryHandle,
    *,
    grace: float | None = None,
    mark_started: bool = True,
) -> None:
    """Stop ``server`` gracefully in ``tel``'s shutdown sequence: its health service turns
    NOT_SERVING, then ``server.stop(grace)`` lets in-flight calls finish (new ones are
    refused) for up to ``grace`` seconds (default: the ``drain_timeout`` setting).

    Call it after ``server.start()`` (for ``grpc.aio``, from the server's event loop);
    ``mark_started`` tells the health registry that start-up is complete.
    """
    seconds = tel.settings.drain_timeout if grace is None else float(grace)
    if isinstance(server, grpc.aio.Server):
        stop = _aio_stopper(server, seconds)
    else:
        stop = _sync_stopper(server, seconds)
    tel.on_shutdown(stop, name="grpc-server")
    if mark_started:
        tel.health.mark_started()


def _sync_stopper(server: Any, grace: float) -> Callable[[], None]:
    def stop() -> None:
        for servicer in _servicers.pop(server, []):
            servicer.shutdown()
        server.stop(grace).wait(grace + 1.0)

    return stop


def _aio_stopper(server: Any, grace: float) -> Callable[[], None]:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigError(
            "server", server, "a grpc.aio server registered from its running event loop"
        ) from None

    def stop() -> None:
        for servicer in _servicers.pop(server, []):
            servicer.shutdown()
        if not loop.is_closed():
            done = asyncio.run_coroutine_threadsafe(server.stop(grace), loop)
            done.result(grace + 1.0)

    return stop
