"""Where the client sent a request (scheme, server address and port) and which HTTP
methods are known: the pure rules, the setting, and the middleware using them."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import unified_obs as obs
from tests.test_http_parity import KINDS, kinds
from unified_obs import ConfigError, Settings
from unified_obs._http import known_methods, normalise_method
from unified_obs._http.origin import client_scheme, server
from unified_obs.testing import capture


@pytest.mark.parametrize(
    ("forwarded", "proto", "scheme"),
    [
        (None, None, "http"),
        (None, "https", "https"),
        (None, "HTTPS, http", "https"),
        ("for=1.2.3.4;proto=https;host=shop.example", None, "https"),
        ('proto="https", proto=http', "http", "https"),
        (None, "gopher", "http"),
    ],
)
def test_client_scheme_follows_the_proxy(
    forwarded: str | None, proto: str | None, scheme: str
) -> None:
    """``url.scheme`` is the client's: ``Forwarded: proto=`` first, then
    ``X-Forwarded-Proto`` (first value), only ``http``/``https``; else the connection's."""
    assert client_scheme("http", forwarded, proto) == scheme


@pytest.mark.parametrize(
    ("host", "scheme", "forwarded", "forwarded_host", "expected"),
    [
        ("shop.example:8080", "http", None, None, ("shop.example", 8080)),
        ("shop.example", "https", None, None, ("shop.example", 443)),
        ("[::1]:9000", "http", None, None, ("::1", 9000)),
        ("[::1]", "http", None, None, ("::1", 80)),
        ("inner:8000", "https", None, "public.example", ("public.example", 443)),
        ("inner:8000", "http", "host=edge.example:8443", "x", ("edge.example", 8443)),
        ("h:99999", "http", None, None, ("h", 80)),
        ("x" * 300, "http", None, None, (None, None)),
        (None, "http", None, None, (None, None)),
    ],
)
def test_server_address_and_port_as_the_client_addressed_them(
    host: str | None,
    scheme: str,
    forwarded: str | None,
    forwarded_host: str | None,
    expected: tuple[str | None, int | None],
) -> None:
    """``server.address``/``server.port``: ``Forwarded: host=``, ``X-Forwarded-Host``, then
    ``Host``; the scheme's port when none is given; nonsense gives nothing."""
    assert server(host, scheme, forwarded, forwarded_host) == expected


def test_known_methods_come_from_the_setting_and_go_back_on_reset() -> None:
    """``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` replaces the list (case-sensitive): PURGE
    becomes known, GET (not listed) becomes ``_OTHER``; a reset restores the default."""
    obs.setup(service_name="m", environ={"OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS": "PURGE,POST"})
    assert (normalise_method("PURGE"), normalise_method("GET")) == ("PURGE", "_OTHER")
    assert set(known_methods()) == {"PURGE", "POST"}
    obs.testing.reset()
    assert (normalise_method("PURGE"), normalise_method("GET")) == ("_OTHER", "GET")


def test_known_methods_setting_is_validated() -> None:
    """A method that is no HTTP token is a ``ConfigError`` in code, a warning (and the
    default) in the environment; case is kept."""
    with pytest.raises(ConfigError):
        Settings.from_env({}, http_known_methods=["GET", "BAD METHOD"])
    assert Settings.from_env({}, http_known_methods=["purge"]).http_known_methods == ("purge",)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        settings = Settings.from_env({"OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS": "GET,a b"})
    assert settings.http_known_methods is None


@kinds
def test_middleware_reports_the_client_view(kind: str) -> None:
    """Behind a proxy the span says what the client used: ``url.scheme`` from
    ``X-Forwarded-Proto``, ``server.address``/``server.port`` from ``X-Forwarded-Host``;
    the duration metric carries ``network.protocol.version``."""
    factory, template = KINDS[kind]
    with capture() as cap:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}
        assert factory()("GET", "/items/1", headers).status_code == 200
        attributes: dict[str, Any] = dict(cap.spans[-1].attributes or {})
        labels = {
            "http.request.method": "GET",
            "http.route": template,
            "http.response.status_code": "200",
            "url.scheme": "https",
            "error.type": "",
            "network.protocol.version": "1.1",
        }
        assert cap.metric("http.server.request.duration", **labels) == 1
    assert attributes["url.scheme"] == "https"
    assert (attributes["server.address"], attributes["server.port"]) == ("shop.example", 443)
