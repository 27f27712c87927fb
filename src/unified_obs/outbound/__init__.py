"""Outbound HTTP: trace context out, a CLIENT span and ``http.client.request.duration`` per request.

    import unified_obs as obs

    obs.setup(service_name="checkout")      # hooks httpx, requests and aiohttp if installed
    httpx.get("http://payments/charge")     # sends traceparent; a CLIENT span "GET"

``setup()`` calls :func:`instrument`; ``setup(outbound_http=False)`` (or
``UNIFIED_OBS_OUTBOUND_HTTP=false``) leaves the clients alone.  Each client library gets a
small hook on its public per-request extension point (see ``_httpx``, ``_requests``,
``_aiohttp``), which hands the request to :class:`~unified_obs.outbound._call.ClientRecorder`.
A library that OpenTelemetry contrib instruments is left to contrib, so a request never
gets two CLIENT spans; requests to our own OTLP endpoints are never observed.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable
from types import ModuleType
from typing import Final

from opentelemetry.trace import TracerProvider

from ..config import Settings, Signal
from ._call import ClientRecorder, describe_url
from ._hooks import cancel_pending, when_imported

__all__ = ["LIBRARIES", "configure", "instrument", "instrumented", "uninstrument"]

LIBRARIES: Final = ("httpx", "requests", "aiohttp")
"""The client libraries :func:`instrument` hooks when they are installed."""

_hooked: list[str] = []


def _installed(library: str) -> bool:
    return importlib.util.find_spec(library) is not None


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    excluded_urls: Iterable[str] = (),
    libraries: Iterable[str] = LIBRARIES,
) -> tuple[str, ...]:
    """Hook every installed client library of ``libraries``, each when it is first imported
    (at once if it is already); returns the installed ones it will hook.

    Calling it again replaces the recorder (a new ``setup()``) without hooking twice.
    ``excluded_urls`` are URL prefixes never observed (``setup()`` passes its OTLP endpoints).
    """
    uninstrument()
    describe_url.cache_clear()  # the redaction policy may have changed
    recorder = ClientRecorder(tracer_provider, tuple(excluded_urls))
    chosen = tuple(lib for lib in LIBRARIES if lib in set(libraries) and _installed(lib))
    for library in chosen:
        when_imported(library, functools.partial(_install, library, recorder))
    return chosen


def configure(settings: Settings) -> tuple[str, ...]:
    """What ``setup()`` calls: :func:`instrument` unless ``outbound_http`` is off, with the
    OTLP endpoints in use excluded (the exporters' own requests are never observed)."""
    uninstrument()
    if not settings.outbound_http:
        return ()
    signals: tuple[Signal, ...] = ("traces", "metrics", "logs")
    endpoints = [settings.otlp(s).endpoint for s in signals if settings.exporter(s) == "otlp"]
    return instrument(excluded_urls=endpoints)


def _adapter(library: str) -> ModuleType:
    """The hook module of ``library`` (imported only when the library is installed)."""
    if library == "httpx":
        from . import _httpx as adapter
    elif library == "requests":
        from . import _requests as adapter  # type: ignore[no-redef]
    else:
        from . import _aiohttp as adapter  # type: ignore[no-redef]
    return adapter


def _install(library: str, recorder: ClientRecorder) -> None:
    adapter = _adapter(library)
    if adapter.supported():
        adapter.install(recorder)
        _hooked.append(library)


def uninstrument() -> None:
    """Take every hook off (``testing.reset()``); requests go out unobserved again."""
    cancel_pending()
    for library in _hooked:
        _adapter(library).uninstall()
    _hooked.clear()


def instrumented() -> tuple[str, ...]:
    """The client libraries hooked now (one not imported yet is hooked at its import)."""
    return tuple(_hooked)
