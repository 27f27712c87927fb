"""Import time: ``import unified_obs`` against the libraries it builds on, fresh processes.

Each case starts a fresh interpreter (``python -c "import X"``), so the timed figure is
interpreter start-up plus the import; the ``python -c pass`` case is that start-up alone.
The notes above the table also give the import alone, measured inside the child with
``perf_counter`` around the ``import`` statement (median of several children).  Children
write and reuse bytecode in a private cache (``PYTHONPYCACHEPREFIX``, warmed first), as an
installed wheel would, even when the environment sets ``PYTHONDONTWRITEBYTECODE``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Final

from benchmarks._harness import Group

MODULES: Final = ("unified_obs", "opentelemetry.sdk.trace", "structlog")
_CHILDREN: Final = 7
_TIMED: Final = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)
_ENV: Final = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "unified_obs-bench-pycache")


def _run(code: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=_ENV)

    return run


def _import_only(module: str) -> float:
    """Median seconds of ``import module`` alone, each in a fresh child."""
    samples = []
    for _ in range(_CHILDREN):
        done = subprocess.run(
            [sys.executable, "-c", _TIMED.format(module=module)],
            check=True,
            capture_output=True,
            text=True,
            env=_ENV,
        )
        samples.append(float(done.stdout.strip()))
    return statistics.median(samples)


def _measure_import_only(group: Group) -> Callable[[], None]:
    def setup() -> None:
        for case in group.cases.values():  # warm the bytecode cache
            case()
        rows = [f"| `import {m}` | {_import_only(m) * 1e3:.1f} |" for m in MODULES]
        group.notes += "\n\n| import alone (in-child perf_counter) | median ms |\n|---|---:|\n"
        group.notes += "\n".join(rows)

    return setup


def groups() -> list[Group]:
    """The import-time group."""
    group = Group(
        title="Import time in a fresh interpreter (start-up + import)",
        cases={
            **{f"import {m}": _run(f"import {m}") for m in MODULES},
            "python -c pass (start-up only)": _run("pass"),
        },
        anchor="import opentelemetry.sdk.trace",
        notes=(__doc__ or "").split("\n\n")[1],
    )
    group.setup = _measure_import_only(group)
    return [group]
