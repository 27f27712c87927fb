"""Every use of another library's private names, one module per dependency.

Each fast path built on private names has a probe that checks, once, what the path relies
on (the names, the call signatures, and a tiny run of the real objects) and falls back to
the library's public API when anything differs.  :func:`decide` (in ``_probes``) runs a
probe, caches its answer and logs once at debug level which path is active;
:func:`active_paths` reports every probe's answer (``unified-obs doctor`` prints them).
``tests/test_compat_inventory.py`` checks that no other module touches another library's
private names.
"""

from __future__ import annotations

import contextlib

from ._probes import decide, forget

__all__ = ["active_paths", "decide", "forget"]


def active_paths() -> dict[str, bool]:
    """Every fast path of the dependencies' modules, by name: ``True`` where the fast path
    is active, ``False`` where the public API is used (each probe runs once)."""
    from . import (  # noqa: F401 - registers
        _probes,
        cpython,
        opentelemetry,
        opentelemetry_log_batch,
        opentelemetry_logs,
        opentelemetry_tracer,
        prometheus_client,
        wrapt,
    )

    with contextlib.suppress(ImportError):  # grpcio and its exporter: the [grpc] extra
        from . import grpc_exporter  # noqa: F401 - registers

    return {path: decide(path, probe) for path, probe in sorted(_probes.probes().items())}
