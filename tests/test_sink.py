"""Log lines reach a pipe promptly although they are not flushed one by one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import orjson

_CHILD = textwrap.dedent(
    """
    import sys
    import unified_obs as obs

    obs.setup(service_name="sink-test", environ={}, log_format="json")
    obs.get_logger("t").info("buffered", n=1)
    sys.stdin.read()  # stay alive without exiting (exit would flush anyway)
    """
)


def test_buffered_line_reaches_a_pipe_while_the_process_keeps_running() -> None:
    """The background flusher delivers an info line to a pipe without process exit."""
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": ""},  # a block-buffered stdout, as in production
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # blocks until the flusher writes the line
        finally:
            child.kill()
    record = orjson.loads(line)
    assert record["event"] == "buffered"
    assert record["n"] == 1
