"""The ``trace_flags`` a log line shows, as docs/logs.md and Troubleshooting describe it."""

from __future__ import annotations

from opentelemetry import propagate, trace

import unified_obs as obs
from unified_obs.testing import capture

_CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_new_root_span_logs_flags_03_and_a_continued_trace_keeps_the_callers_01() -> None:
    """A root span the SDK starts sets "sampled" and "random trace id" (W3C Level 2):
    ``"03"``; a trace continued from a caller that sends ``-01`` keeps ``"01"``."""
    log = obs.get_logger("flags")
    tracer = trace.get_tracer("flags")
    with capture() as cap:
        with tracer.start_as_current_span("root"):
            log.info("in.root")
        parent = propagate.extract({"traceparent": _CALLER})
        with tracer.start_as_current_span("child", context=parent):
            log.info("in.child")
    lines = {line["event"]: line for line in cap.logs if line["event"] in {"in.root", "in.child"}}
    assert lines["in.root"]["trace_flags"] == "03"
    assert lines["in.child"]["trace_flags"] == "01"
    assert lines["in.child"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
