"""Debug endpoints: what the library and the process are doing, on their own listener.

Off by default: nothing is served until ``tel.serve_debug()`` is called, and never on the
application's port (Go's pprof, mounted on the default mux, is the cautionary tale).
Loopback only unless ``allow_remote=True``.  Values are masked (secrets never leave: header
values, URL credentials and query strings, secret-looking resource attributes), stacks
show file, line and function only, and every response is bounded.

=====================  ==================================================================
``/debug/``            the list of endpoints
``/debug/config``      the effective configuration, the source of each value (JSON)
``/debug/threads``     every thread's stack (text)
``/debug/tasks``       every pending asyncio task of every running loop, with its stack
``/debug/telemetry``   per signal: exporter, items exported/failed/dropped (metrics: data
                       points), failed export calls, items queued (metrics: ``"pull
                       only"`` without a push exporter), when each outcome last happened,
                       the kind of the last failure (JSON)
=====================  ==================================================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from email.message import Message
from typing import Any, Final

import orjson

from .. import metrics
from ..config import Entry, Settings, mask_url
from ..endpoints import Response
from ..errors import ConfigError
from ..metrics import export_status
from ._stacks import task_stacks, thread_stacks

__all__ = ["MAX_BODY", "PATHS", "check_host", "routes", "telemetry"]

MAX_BODY: Final = 512 * 1024
"""No response is longer than this many bytes (a longer one is cut and says so)."""

PATHS: Final[Mapping[str, str]] = {
    "/debug/config": "the effective configuration and the source of each value",
    "/debug/threads": "every thread's stack",
    "/debug/tasks": "every pending asyncio task of every running event loop, with its stack",
    "/debug/telemetry": "export outcomes, queue depths and when each outcome last happened",
}
_SIGNALS: Final = ("traces", "metrics", "logs")
_CUT: Final = b"\n... cut at the debug endpoints' size limit\n"


def check_host(host: str, allow_remote: bool) -> None:
    """Raise ``ConfigError`` for an address other than loopback unless ``allow_remote``."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            "host", host, "a loopback address (127.0.0.1, ::1, localhost) or allow_remote=True"
        )


def routes(
    settings: Settings, configuration: Callable[[], list[Entry]]
) -> Callable[[str, Message, bool], Response | None]:
    """The debug routes for a service configured with ``settings``; ``configuration``
    gives the effective configuration (already masked) when asked."""
    pages: dict[str, Callable[[], Response]] = {
        "/debug": _index,
        "/debug/": _index,
        "/debug/config": lambda: _json([entry.as_dict() for entry in configuration()]),
        "/debug/threads": lambda: _text(thread_stacks()),
        "/debug/tasks": lambda: _text(task_stacks()),
        "/debug/telemetry": lambda: _json(telemetry(settings)),
    }

    def answer(path: str, headers: Message, head: bool) -> Response | None:
        page = pages.get(path)
        if page is None:
            return None
        status, response_headers, body = page()
        return status, response_headers, b"" if head else body

    return answer


def telemetry(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per signal: exporter and endpoint (masked), item counts by outcome (metrics: data
    points), failed export calls, items queued, when each outcome last happened and the
    kind of the last failure.  Metrics have no queue: ``queued`` is ``"pull only"`` when
    nothing pushes them (``/metrics`` alone), else ``None``."""
    status = export_status.snapshot(_SIGNALS)
    report: dict[str, dict[str, Any]] = {}
    for signal in _SIGNALS:
        exporter = settings.exporter(signal)
        target = settings.otlp(signal)
        report[signal] = {
            "exporter": exporter,
            "endpoint": mask_url(target.endpoint) if exporter == "otlp" else None,
            **{
                outcome: _count(
                    metrics.value("unified_obs.export.items", signal=signal, outcome=outcome)
                )
                for outcome in export_status.OUTCOMES
            },
            "failed_calls": _count(metrics.value("unified_obs.export.failures", signal=signal)),
            **status[signal],
        }
    if settings.exporter("metrics") == "none":
        report["metrics"]["queued"] = "pull only"
    return report


def _count(value: float | None) -> int:
    return 0 if value is None else int(value)


def _index() -> Response:
    return _json({"endpoints": dict(PATHS)})


def _json(payload: object) -> Response:
    return _bounded("application/json", orjson.dumps(payload, option=orjson.OPT_INDENT_2))


def _text(text: str) -> Response:
    return _bounded("text/plain; charset=utf-8", text.encode("utf-8", "replace"))


def _bounded(content_type: str, body: bytes) -> Response:
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - len(_CUT)] + _CUT
    headers = [
        ("content-type", content_type),
        ("cache-control", "no-store"),
        ("content-length", str(len(body))),
    ]
    return 200, headers, body
