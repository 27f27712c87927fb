"""``cap.metric(name, **labels)`` with some of a series' labels: the one match, a clear
error listing the candidates when several match, ``None`` when none does."""

from __future__ import annotations

import httpx
import pytest

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware, Receive, Scope, Send
from unified_obs.testing import capture


def test_partial_labels_answer_the_single_matching_series() -> None:
    """Giving one of two labels finds the series when only one has that value."""
    with capture() as cap:
        orders = obs.counter("orders.created", "Orders", labels=("channel", "region"))
        orders.labels(channel="web", region="eu").inc(3)
        orders.labels(channel="app", region="eu").inc()
        assert cap.metric("orders.created", channel="web") == 3
        assert cap.metric("orders_created_total", channel="web") == 3
        assert cap.metric("orders.created", channel="web", region="eu") == 3


def test_several_matching_series_raise_with_the_candidates() -> None:
    """An ambiguous lookup fails loudly, naming each candidate's labels."""
    with capture() as cap:
        orders = obs.counter("orders.created", "Orders", labels=("channel", "region"))
        orders.labels(channel="web", region="eu").inc()
        orders.labels(channel="app", region="eu").inc()
        with pytest.raises(AssertionError) as error:
            cap.metric("orders.created", region="eu")
    message = str(error.value)
    assert "2 series of 'orders.created' match {region='eu'}" in message
    assert "{channel='app', region='eu'}" in message
    assert "{channel='web', region='eu'}" in message


def test_no_matching_series_is_none() -> None:
    """A label value nobody recorded, an unknown label or an unknown metric give None."""
    with capture() as cap:
        orders = obs.counter("orders.created", "Orders", labels=("channel", "region"))
        orders.labels(channel="web", region="eu").inc()
        assert cap.metric("orders.created", channel="fax") is None
        assert cap.metric("orders.created", colour="red") is None
        assert cap.metric("never.defined", channel="web") is None


def test_histogram_count_by_one_label() -> None:
    """A histogram answers its count, found by a single label."""
    with capture() as cap:
        latency = obs.histogram("job.duration", "Jobs", labels=("queue", "kind"), unit="s")
        latency.labels(queue="mail", kind="a").observe(0.1)
        latency.labels(queue="mail", kind="a").observe(0.2)
        latency.labels(queue="sms", kind="a").observe(0.3)
        assert cap.metric("job.duration", queue="mail") == 2


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


@pytest.mark.asyncio
async def test_http_duration_by_status_alone() -> None:
    """The middleware's duration histogram, whose series carry method, scheme, route,
    status and protocol labels, is found by its status code alone."""
    with capture() as cap:
        transport = httpx.ASGITransport(ObservabilityMiddleware(_hello))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            await client.get("/")
            await client.get("/")
        count = cap.metric(
            "http_server_request_duration_seconds_count", http_response_status_code="200"
        )
        assert count == 2
