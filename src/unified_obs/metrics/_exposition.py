"""``/metrics``: one pure renderer and thin ASGI/WSGI apps over it.

Content negotiation follows Prometheus: OpenMetrics 1.0 (with exemplars) when the
``Accept`` header asks for ``application/openmetrics-text``, else text format 0.0.4
(written by ``_text_format``);
gzip when ``Accept-Encoding`` allows it.  In multiprocess mode the body is the sum over
every worker's files (see ``_multiprocess``).
"""

from __future__ import annotations

import functools
import gzip
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any, Final

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector, CollectorRegistry

from . import _multiprocess, _own_families, _text_format
from ._prometheus import Translated, plan, scope_labels
from ._safe_labels import SanitisedRegistry

__all__ = ["before_every_read", "make_asgi_app", "make_wsgi_app", "read_pending", "render"]

_log: Final = logging.getLogger("unified_obs")
Headers = list[tuple[str, str]]
_ALLOWED: Final = ("GET", "HEAD")
_pending_sources: list[tuple[Callable[[], None], Callable[[str], bool] | None]] = []


def before_every_read(
    record_pending: Callable[[], None], *, only_for: Callable[[str], bool] | None = None
) -> None:
    """Have ``record_pending`` run before every read of the values (a scrape, an OTLP
    push, ``metrics.value``): the HTTP middleware registers the work it leaves for the
    event loop's next turn, so that a read never misses a finished request.  With
    ``only_for``, ``metrics.value(name)`` runs it only when ``only_for(name)`` (the names
    whose values it records; a scrape and a push run it always)."""
    if all(source is not record_pending for source, _ in _pending_sources):
        _pending_sources.append((record_pending, only_for))


def read_pending(name: str | None = None) -> None:
    """Record what the registered sources still hold (see :func:`before_every_read`):
    all of it, or with ``name`` (a read of one name) what may change that name's value."""
    for record_pending, only_for in _pending_sources:
        if name is None or only_for is None or only_for(name):
            record_pending()


def render(
    accept: str | None = None,
    accept_encoding: str | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> tuple[int, Headers, bytes]:
    """``(status, headers, body)`` for a scrape; never raises (500 on a collector error)."""
    read_pending()
    try:
        encoder, content_type = choose_encoder(accept or "")
        try:
            body = _encode(encoder, registry)
        except UnicodeEncodeError:  # a value UTF-8 cannot write: render a sanitised view
            body = _encode(lambda found: encoder(SanitisedRegistry(found)), registry)
    except Exception:
        _log.warning("unified_obs: rendering /metrics failed", exc_info=True)
        return 500, [("Content-Type", "text/plain; charset=utf-8")], b"metrics collection failed\n"
    headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
    if gzip_accepted(accept_encoding or ""):
        body = gzip.compress(body, compresslevel=6)
        headers.append(("Content-Encoding", "gzip"))
    return 200, headers, body


def _encode(encoder: Callable[[Collector], bytes], registry: CollectorRegistry | None) -> bytes:
    writers = _writers(encoder)
    path = _multiprocess.active_dir() if registry is None else None
    if path is not None:
        return _multiprocess.render(path, lambda found: _translated(encoder, writers, found))
    if registry is None and writers is not None:
        return _with_own_families(writers)
    return _translated(encoder, writers, registry or REGISTRY)


_Writers = tuple[Callable[..., bytes], Callable[..., None]]


def _writers(encoder: Callable[[Collector], bytes]) -> _Writers | None:
    """Our writers of ``encoder``'s format (the whole scrape's, our instruments'): text
    0.0.4 and OpenMetrics 1.0.0 (what Prometheus asks for; the same bytes, several times
    faster); ``None`` for any other, which ``prometheus_client`` writes."""
    if encoder is generate_latest:
        return _text_format.write, _own_families.write
    if _is_openmetrics_1(encoder):
        return _text_format.write_openmetrics, _own_families.write_openmetrics
    return None


def _with_own_families(writers: _Writers) -> bytes:
    """The default registry in one of the writers' formats, our instruments written from
    their series (``_own_families``) and the other collectors' families after them; as
    ``_translated`` writes it when one of those shares a name with ours (they are one family)."""
    write, write_own = writers
    with _own_families.deferred():
        families = plan(REGISTRY.collect())
    if _own_families.names() & {family.head.name for family in families}:
        return write(plan(REGISTRY.collect()))
    scope = scope_labels()
    return write(families, first=lambda out, texts: write_own(out, scope, texts))


def _translated(
    encoder: Callable[[Collector], bytes], writers: _Writers | None, registry: Collector
) -> bytes:
    """``registry`` as a scrape shows it (``_prometheus``), in ``encoder``'s format: by our
    own writer when there is one (:func:`_writers`), else by ``prometheus_client``."""
    if writers is not None:
        return writers[0](plan(registry.collect()))
    return encoder(Translated(registry))


try:  # prometheus-client >= 0.23 negotiates the OpenMetrics version and name escaping
    from prometheus_client.openmetrics.exposition import UNDERSCORES

    _OPENMETRICS_1: Any = functools.partial(
        openmetrics_latest, escaping=UNDERSCORES, version="1.0.0"
    )
except ImportError:  # older releases write OpenMetrics their own way: theirs is used as is
    _OPENMETRICS_1 = None


def _is_openmetrics_1(encoder: Callable[[Collector], bytes]) -> bool:
    """Whether ``encoder`` is what ``choose_encoder`` picks for OpenMetrics 1.0.0 with
    underscore-escaped names, the bytes our writer makes (never before prometheus-client
    0.23, whose OpenMetrics lines differ: names with ``:`` unquoted, exemplars on gauges)."""
    return (
        isinstance(encoder, functools.partial)
        and isinstance(_OPENMETRICS_1, functools.partial)
        and encoder.func is openmetrics_latest
        and encoder.keywords == _OPENMETRICS_1.keywords
    )


def _respond(method: str, accept: str | None, encoding: str | None) -> tuple[int, Headers, bytes]:
    if method not in _ALLOWED:
        return (
            405,
            [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")],
            b"method not allowed\n",
        )
    status, headers, body = render(accept, encoding)
    headers.append(("Content-Length", str(len(body))))
    return status, headers, b"" if method == "HEAD" else body


def make_wsgi_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI app serving :func:`render` (mount it at ``/metrics``)."""

    def metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, headers, body = _respond(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("HTTP_ACCEPT"),
            environ.get("HTTP_ACCEPT_ENCODING"),
        )
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    return metrics_app


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def make_asgi_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app serving :func:`render` (mount it at ``/metrics``)."""

    async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        found = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, headers, body = _respond(
            scope.get("method", "GET"), found.get("accept"), found.get("accept-encoding")
        )
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return metrics_app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
