"""Property-based sweep of hostile input (hypothesis, bounded example counts).

Over label values, log fields and configuration values: nothing raises into the
application, ``/metrics`` always passes ``promtool check metrics`` and both of
``prometheus_client``'s parsers, every record stays within its limits, and no canary
secret appears in any output (stdout, ``/metrics``, errors, warnings, ``repr``).
The single-finding tests are in ``test_hostile.py``.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import metrics as otel_metrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import unified_obs as obs
from tests.test_hostile import OPENMETRICS, promtool_check
from unified_obs import limits, metrics
from unified_obs.config import ENV_VARS, Settings
from unified_obs.limits import AttributeLimits
from unified_obs.metrics._safe_labels import label_value
from unified_obs.testing import reset

CANARY = "c4n4ry-s3cr3t"
SOME = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
"""Bounded and repeatable: the same examples on every run, so CI stays fast and stable."""
MANY = settings(SOME, max_examples=150)
"""For properties that cost well under a millisecond an example."""

_AWKWARD = ["\ud800", "\udfff", "\n", "\r", "\\", '"', "\x00", "\u2028", "\ufeff", "=", ",", "{"]
hostile_text = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(_AWKWARD)), max_size=8).map(
    "".join
)
"""Text with what breaks encoders and parsers: lone surrogates, controls, quotes."""

secret_url = st.sampled_from(["postgres", "https", "redis", "x-y.z"]).map(
    lambda scheme: f"{scheme}://user:{CANARY}@db.internal:5432/app"
)
"""A URL carrying the canary as its password."""

scalar = st.one_of(
    hostile_text, st.integers(), st.floats(), st.booleans(), st.none(), st.binary(max_size=8)
)
log_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(hostile_text, inner, max_size=3),
        st.dictionaries(st.sampled_from(["password", "api_key", "Token"]), st.just(CANARY)),
    ),
    max_leaves=8,
)
"""A log field's value: scalars, containers, sensitive keys holding the canary."""


def _fresh(**options: Any) -> None:
    reset()
    obs.setup(service_name="props", environ={}, handle_signals=False, **options)


@SOME
@given(values=st.lists(hostile_text, min_size=1, max_size=4))
def test_any_label_values_keep_metrics_valid(values: list[str]) -> None:
    """Whatever label values are recorded (our instruments and the OpenTelemetry API),
    every scrape answers 200 in both formats, passes promtool and both parsers, and
    shows each value as label_value makes it (valid UTF-8)."""
    _fresh()
    counter = obs.counter("props.values", "Hostile values", labels=("v",))
    meter = otel_metrics.get_meter("props")
    api_counter = meter.create_counter("props.api")
    for value in values:
        counter.labels(v=value).inc()
        api_counter.add(1, {"v": value})
    text_status, _, text = metrics.render(None, None)
    om_status, _, om = metrics.render(OPENMETRICS, None)
    assert (text_status, om_status) == (200, 200)
    assert promtool_check(text) == ""
    shown = {
        s.labels["v"]
        for family in parse_text(text.decode())
        if family.name == "props_values"
        for s in family.samples
    }
    assert shown == {label_value(v) for v in values}
    assert list(parse_om(om.decode()))  # type: ignore[no-untyped-call]


@SOME
@given(event=hostile_text, fields=st.dictionaries(hostile_text, log_value, max_size=6))
def test_any_log_fields_give_one_json_line_without_secrets(
    event: str, fields: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Any event and fields (surrogates, controls, nesting, sensitive keys at any depth):
    logging never raises, writes exactly one line of valid JSON, and the canary under a
    sensitive key never reaches it; the line stays within the log record limits."""
    _fresh(log_format="json")
    capsys.readouterr()
    obs.get_logger("props").info(event, **{f"k_{k}": v for k, v in fields.items()})
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    json.loads(out)
    assert CANARY not in out
    assert len(out) <= _line_bound(limits.policy().log_records)


def _line_bound(limit: AttributeLimits) -> int:
    """Characters a JSON line may take: every field and the message at the value length,
    escaped (at most 6 characters per character), plus the keys and framing."""
    return (limit.count + 16) * (limit.value_length * 6 + 300)


config_value = st.one_of(
    hostile_text,
    secret_url,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(hostile_text, secret_url), max_size=3),
    st.dictionaries(
        st.one_of(hostile_text, st.sampled_from(["api_key", "password"])),
        st.one_of(hostile_text, secret_url),
        max_size=3,
    ),
)
"""A value for any setting; the canary only where it is a secret: a URL's password, a
value under a sensitive key, an OTLP header value."""


@MANY
@given(field=st.sampled_from(sorted(ENV_VARS.values())), value=config_value)
def test_any_config_value_is_accepted_or_refused_without_leaking(field: str, value: Any) -> None:
    """Any value given in code for any setting either gives Settings whose repr holds no
    secret, or raises ConfigError naming the field without the canary; nothing else."""
    if "header" in field and isinstance(value, dict):
        value = {str(k) or "k": CANARY for k in value}
    named = field
    try:
        shown = repr(Settings.from_env({}, **{field: value}))
    except obs.ConfigError as error:
        shown, named = str(error), error.field
    assert named in ENV_VARS.values()  # a relation between fields may name the other one
    assert CANARY not in shown


@MANY
@given(variable=st.sampled_from(sorted(ENV_VARS)), raw=st.one_of(hostile_text, secret_url))
def test_any_environment_value_warns_at_most_without_leaking(variable: str, raw: str) -> None:
    """Any environment value is used or ignored with a warning; nothing raises, and the
    canary (as a URL password or a header value) is in no warning and no repr."""
    if "HEADERS" in variable:
        raw = f"authorization={CANARY}," + raw
    environ = {variable: raw.replace("\x00", "")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = Settings.from_env(environ)
        except obs.ConfigError:  # a relation between fields set only by the environment
            pytest.fail("the environment alone must never raise")
    assert all(CANARY not in str(w.message) for w in caught)
    assert CANARY not in repr(found)


_NAMES = ("traceparent", "tracestate", "baggage", "authorization", "cookie", "x-api-key")
header_name = st.one_of(
    st.sampled_from((*_NAMES, "user-agent", "x-request-id", "x-tenant", "content-length")),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12),
)
header_value = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", b"k=v", b"a=1,,b=2"]
    ),
    st.just(b"x" * 9000),
)
SECRET_HEADERS = [(b"authorization", f"Bearer {CANARY}".encode()), (b"x-api-key", CANARY.encode())]


def _asgi_request(headers: list[tuple[bytes, bytes]], query: bytes) -> list[dict[str, Any]]:
    """One request straight through the ASGI middleware; what it sent."""
    import asyncio

    from unified_obs.asgi import ObservabilityMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "GET", "path": "/p", "raw_path": b"/p"}
    scope |= {"query_string": query, "headers": headers, "scheme": "http"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    middleware = ObservabilityMiddleware(app, capture_request_headers=("authorization", "x-tenant"))
    asyncio.run(middleware(scope, receive, send))
    return sent


@SOME
@given(
    headers=st.lists(st.tuples(header_name.map(str.encode), header_value), max_size=10),
    query=st.binary(max_size=60),
)
def test_any_request_headers_never_reach_the_app_as_errors(
    headers: list[tuple[bytes, bytes]], query: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any header lines and query bytes: the app answers 200 through the middleware, the
    server span's attributes stay within the span limits, and the canary sent as a
    credential (Authorization, an API key, a token parameter) is in no span attribute and
    no stdout line."""
    from unified_obs.testing import capture

    reset()
    capsys.readouterr()
    lines = [*headers, *SECRET_HEADERS]
    with capture(handle_signals=False, outbound_http=False, log_format="json") as cap:
        sent = _asgi_request(lines, query + b"&token=" + CANARY.encode())
        spans = list(cap.spans)
    assert sent[0]["status"] == 200
    (span,) = spans
    attributes = dict(span.attributes or {})
    assert len(attributes) <= 128
    for value in attributes.values():
        for item in value if isinstance(value, tuple) else (value,):
            assert not isinstance(item, str) or len(item) <= 4096
    assert CANARY not in repr(attributes)
    assert CANARY not in capsys.readouterr().out
