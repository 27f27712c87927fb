"""Inbound baggage stays out of the telemetry (reliability plan T-10), on real servers.

A request carries W3C ``baggage`` with personal data (an e-mail address and a user id);
the server (uvicorn + Starlette, gunicorn + Flask) exports its spans over OTLP to the
test's receiver, prints its log lines and serves ``/metrics``.  By default none of the
baggage keys or values appears in any span attribute, log line or metric sample.
"""

from __future__ import annotations

import httpx
import pytest

from tests.test_servers import run_server

EMAIL = "canary.person@example.invalid"
USER_ID = "canary-user-4242"
BAGGAGE = f"email={EMAIL.replace('@', '%40')},user_id={USER_ID}"
CANARIES = ("canary.person", "canary-user-4242", "canary.person%40example.invalid")


@pytest.mark.parametrize("name", ["uvicorn-starlette", "gunicorn-flask"])
def test_baggage_never_reaches_spans_logs_or_metrics(name: str) -> None:
    """With baggage on every request, 0 canary occurrences in the exported spans (every
    attribute, event and resource value), the server's stdout and ``/metrics``."""
    with run_server(name) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        for item in range(3):
            assert client.get(f"/items/{item}", headers={"baggage": BAGGAGE}).status_code == 200
        scrape = client.get("/metrics", headers={"baggage": BAGGAGE}).text
        assert server.received.wait_for(lambda r: len(r.spans()) >= 3)
        spans = [repr(span) + repr(resource) for resource, span in server.received.spans()]
        server.stop()
        output = server.output.read_text(errors="replace")
    assert "item.read" in output  # the app's log lines were written
    for text in (*spans, output, scrape):
        assert not [canary for canary in CANARIES if canary in text]
    assert "email" not in "".join(spans)
