"""Import time, and import + setup, of unified_obs against the libraries it builds on.

Every sample is a fresh interpreter that times itself with ``perf_counter`` around the
``import`` statement (or import + setup) and prints the seconds, so interpreter start-up
(``python -c pass``, timed from the parent, for context) does not dilute the ratios.
Cases run once per round, in a fresh order each round.  The ``x`` column divides
medians; the last column gives the mean of the per-round ratios and its 95 % interval.
Budget: ``import unified_obs`` <= 1.5x ``import opentelemetry.sdk.trace``: PASS when
the whole interval is within it, FAIL when all of it is above, else WITHIN NOISE.
Children write and reuse bytecode in a private cache (``PYTHONPYCACHEPREFIX``, warmed
first), as an installed wheel would, even when the environment sets
``PYTHONDONTWRITEBYTECODE``; ``OTEL_*`` variables are not passed to them.

Import + setup, no budget: ``unified_obs.setup()`` with OTLP/HTTP pointed at a closed
loopback port against stock wiring by hand, same endpoint: SDK TracerProvider +
BatchSpanProcessor, MeterProvider + PeriodicExportingMetricReader (no Prometheus
reader), LoggerProvider + BatchLogRecordProcessor, OTLP/HTTP exporters; structlog
rendering JSON through a stdlib handler, plus the SDK's LoggingHandler (deprecated for
opentelemetry-instrumentation-logging, not installed here).  setup() also builds its
prometheus_client registry and installs signal handlers.  Nothing is exported while
timed; each child ``os._exit(0)``s after printing, so no flush or shutdown is timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Final

from benchmarks._harness import Group

MODULES: Final = ("unified_obs", "opentelemetry.sdk.trace", "structlog")
OURS: Final = "unified_obs import + setup()"
STOCK: Final = "stock OTel SDK + structlog, by hand"
ENDPOINT: Final = "http://127.0.0.1:9"  # the discard port, closed on loopback
_ENV: Final = {
    k: v
    for k, v in os.environ.items()
    if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("OTEL_")
}
_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "unified_obs-bench-pycache")

_TIMED: Final = """\
import os, time
t = time.perf_counter()
{body}
print(time.perf_counter() - t, flush=True)
os._exit(0)
"""
_OURS_SETUP: Final = f"""\
import unified_obs
unified_obs.setup(service_name="bench", environ={{"OTEL_EXPORTER_OTLP_ENDPOINT": "{ENDPOINT}"}})
"""
_STOCK_SETUP: Final = f"""\
import logging
import structlog
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

resource = Resource.create({{"service.name": "bench"}})
tracer_provider = TracerProvider(resource=resource)
span_exporter = OTLPSpanExporter(endpoint="{ENDPOINT}/v1/traces")
tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
trace.set_tracer_provider(tracer_provider)
reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint="{ENDPOINT}/v1/metrics"))
metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
logger_provider = LoggerProvider(resource=resource)
log_exporter = OTLPLogExporter(endpoint="{ENDPOINT}/v1/logs")
logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
set_logger_provider(logger_provider)

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
handler = logging.StreamHandler()
json_lines = structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
handler.setFormatter(json_lines)
root = logging.getLogger()
root.addHandler(handler)
root.addHandler(LoggingHandler(logger_provider=logger_provider))
root.setLevel(logging.INFO)
"""


def _child(body: str) -> Callable[[], float]:
    """A case: a fresh interpreter runs ``body`` and prints its own seconds, last."""
    code = _TIMED.format(body=body)

    def run() -> float:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=_ENV
        )
        if done.returncode:
            raise RuntimeError(f"benchmark child failed:\n{code}\n{done.stderr}")
        return float(done.stdout.split()[-1])

    return run


def _start_up() -> float:
    """Seconds of ``python -c pass`` seen from the parent: interpreter start-up."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True, env=_ENV)
    return time.perf_counter() - start


def _warmed(group: Group) -> Group:
    """``group``, with every case run once first to fill the bytecode cache."""

    def warm() -> None:
        for case in group.cases.values():
            case()

    group.setup = warm
    return group


def _paragraph(index: int) -> str:
    return (__doc__ or "").split("\n\n")[index].strip()


def groups() -> list[Group]:
    """Import alone (budgeted), then import + setup against stock wiring (reported)."""
    imports = {f"import {m}": _child(f"import {m}") for m in MODULES}
    imports["python -c pass (start-up, parent wall time)"] = _start_up
    setups = {OURS: _child(_OURS_SETUP), STOCK: _child(_STOCK_SETUP)}
    return [
        _warmed(
            Group(
                "Import time, in-child perf_counter, fresh interpreters",
                imports,
                anchor="import opentelemetry.sdk.trace",
                budgets={"import unified_obs": 1.5},
                notes=_paragraph(1),
                self_timed=True,
                interval=True,
            )
        ),
        _warmed(
            Group(
                "Import + setup, in-child perf_counter, fresh interpreters",
                setups,
                anchor=STOCK,
                notes=_paragraph(2),
                self_timed=True,
                interval=True,
            )
        ),
    ]
