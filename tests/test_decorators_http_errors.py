"""HTTP exceptions that frameworks answer themselves: a 4xx is control flow, not a failure.

A FastAPI handler under ``@obs.traced`` that raises ``HTTPException(404)`` is driven through
the real app over httpx's ASGI transport; Flask's ``abort`` (werkzeug) and Django's
``Http404`` are raised through decorated functions.  A 4xx leaves the span's status
unset, is counted as ``outcome="client_error"`` and logged at debug level only; a 5xx
and an HTTP *client's* error stay errors.  The same app serves ``/metrics``, which shows
the counter ``@obs.counted("jobs.processed")`` names.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from django.http import Http404
from fastapi import FastAPI, HTTPException
from flask import Flask, abort
from opentelemetry.trace import StatusCode

import unified_obs as obs
from unified_obs import metrics
from unified_obs.testing import Captured, capture


@obs.counted("jobs.processed")
def process_job(job_id: int) -> None:
    """Counted in a counter of its own."""
    if job_id < 0:
        raise ValueError("negative job id")


def make_app() -> FastAPI:
    """Handlers that answer 404 and 503 by raising, a job endpoint, and ``/metrics``."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    @obs.traced(name="get_item")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(status_code=404, detail="no such item")
        if item_id == 1:
            raise HTTPException(status_code=503, detail="store down")
        return {"id": item_id}

    @app.post("/jobs/{job_id}")
    def run_job(job_id: int) -> dict[str, bool]:
        try:
            process_job(job_id)
        except ValueError:
            return {"done": False}
        return {"done": True}

    app.mount("/metrics", metrics.make_asgi_app())
    return app


def fetch(app: FastAPI, *requests: tuple[str, str]) -> list[httpx.Response]:
    """Send ``(method, path)`` requests to ``app`` through httpx's ASGI transport."""

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.request(method, path) for method, path in requests]

    return asyncio.run(send_all())


def failures(cap: Captured, name: str) -> list[dict[str, Any]]:
    """The log records about ``name`` failing, at any level."""
    return [r for r in cap.logs if r.get("function") == name]


def test_fastapi_404_is_not_an_error_and_503_is() -> None:
    """``HTTPException(404)`` from a traced FastAPI handler: the client gets 404, the span
    has no Error status but ``http.response.status_code=404``, the call is counted as
    ``client_error`` and logged once at debug level; ``HTTPException(503)`` stays an
    error (Error status, ``outcome="error"``, an error log line)."""
    with capture(log_level="debug") as cap:
        not_found, unavailable = fetch(make_app(), ("GET", "/items/0"), ("GET", "/items/1"))
        assert (not_found.status_code, unavailable.status_code) == (404, 503)
        first, second = [s for s in cap.spans if s.name == "get_item"]
        assert first.status.status_code is StatusCode.UNSET
        assert first.attributes is not None
        assert first.attributes["http.response.status_code"] == 404
        assert "error.type" not in first.attributes
        assert second.status.status_code is StatusCode.ERROR
        labels = {"function": "get_item", "error_type": "fastapi.exceptions.HTTPException"}
        assert cap.metric("function.calls", outcome="client_error", **labels) == 1.0
        assert cap.metric("function.calls", outcome="error", **labels) == 1.0
        logged = failures(cap, "get_item")
        assert [(r["event"], r["level"]) for r in logged] == [
            ("function.client_error", "debug"),
            ("function.failed", "error"),
        ]
        assert logged[0]["status_code"] == 404


def test_werkzeug_and_django_client_errors_are_not_errors() -> None:
    """Flask's ``abort(403)`` (werkzeug's ``code``) and Django's ``Http404`` (no code at
    all) raised through traced functions leave the span's status unset."""
    flask_app = Flask(__name__)

    @obs.traced(name="forbidden")
    def forbidden() -> None:
        abort(403)

    @obs.traced(name="missing")
    def missing() -> None:
        raise Http404("no such page")

    with capture() as cap, flask_app.test_request_context():
        for call in (forbidden, missing):
            with pytest.raises(Exception, match=r"Forbidden|no such page"):
                call()
        statuses = {s.name: s.attributes["http.response.status_code"] for s in cap.spans}  # type: ignore[index]
        assert statuses == {"forbidden": 403, "missing": 404}
        assert {s.status.status_code for s in cap.spans} == {StatusCode.UNSET}
        assert failures(cap, "forbidden") == failures(cap, "missing") == []


def test_http_client_errors_with_a_status_stay_failures() -> None:
    """An HTTP client's error for a 404 of a dependency (``httpx.HTTPStatusError``), or
    any exception that merely has a ``status_code``, is still a failure of the call."""

    class SdkError(Exception):
        status_code = 404

    request = httpx.Request("GET", "http://dependency.invalid/thing")
    response = httpx.Response(404, request=request)

    @obs.traced(name="fetch_thing")
    def fetch_thing(error: Exception) -> None:
        raise error

    with capture() as cap:
        for error in (httpx.HTTPStatusError("404", request=request, response=response), SdkError()):
            with pytest.raises(type(error)):
                fetch_thing(error)
        assert {s.status.status_code for s in cap.spans} == {StatusCode.ERROR}
        assert [r["event"] for r in failures(cap, "fetch_thing")] == ["function.failed"] * 2


def test_counted_with_a_name_is_its_own_counter_on_the_scrape() -> None:
    """``@obs.counted("jobs.processed")`` shows as ``jobs_processed_total`` by outcome and
    error type on ``/metrics``, not as ``function_calls_total{function="jobs.processed"}``."""
    with capture():
        app = make_app()
        *_, scrape = fetch(
            app,
            ("POST", "/jobs/1"),
            ("POST", "/jobs/2"),
            ("POST", "/jobs/-1"),
            ("GET", "/metrics/"),
        )
        assert scrape.status_code == 200
        lines = scrape.text.splitlines()
        assert "# TYPE jobs_processed_total counter" in lines
        samples = [line for line in lines if line.startswith("jobs_processed_total{")]
        ok = [s for s in samples if 'error_type=""' in s and 'outcome="ok"' in s]
        failed = [s for s in samples if 'error_type="ValueError"' in s and 'outcome="error"' in s]
        assert [s.rsplit(" ", 1)[1] for s in ok + failed] == ["2.0", "1.0"]
        assert 'function="jobs.processed"' not in scrape.text


def test_counted_rejects_a_bad_name_when_applied() -> None:
    """A name that is no instrument name is a ``ConfigError`` at decoration, not a call."""
    with pytest.raises(obs.ConfigError, match="jobs processed!"):
        obs.counted("jobs processed!")
