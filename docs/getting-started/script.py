# A plain script or worker: spans, metrics and logs without a web framework.
#
# Run:   OTEL_TRACES_EXPORTER=console python script.py
#        (or OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python script.py)
import unified_obs as obs

tel = obs.setup(service_name="nightly-report", service_version="1.0.0")
log = obs.get_logger(__name__)
rows_written = obs.counter("report.rows", "Rows written to the report", labels=("table",))


@obs.traced  # a span per call, plus call, error and duration metrics
def export_table(table: str) -> int:
    rows = len(table) * 10
    rows_written.labels(table=table).inc(rows)
    log.info("table.exported", table=table, rows=rows)  # carries the span's trace_id
    return rows


with obs.span("nightly-report"):  # one trace for the whole run
    total = sum(export_table(table) for table in ("orders", "customers"))
    log.info("report.done", rows=total)

obs.shutdown(timeout=5.0)  # flush spans, metrics and logs before the process exits
