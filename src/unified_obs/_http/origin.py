"""Where the client sent the request: ``url.scheme``, ``server.address``, ``server.port``.

The HTTP semantic conventions (``http/http-spans.md``) want the scheme of the original
client request when a proxy reported it (``Forwarded: proto=``, then
``X-Forwarded-Proto``), else the connection's; and the server as the client addressed
it: ``Forwarded: host=``, then ``X-Forwarded-Host``, then the ``Host`` header (HTTP/2's
``:authority``), the port defaulting to the scheme's.  Pure functions over header
values; the answers for a ``Host`` value are cached (a service sees few of them).
"""

from __future__ import annotations

from typing import Final

__all__ = ["client_scheme", "server"]

_SCHEMES: Final = frozenset({"http", "https"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LONGEST: Final = 255
"""Longest host (with port) read; a longer one is no host name at all."""
_CACHE_LIMIT: Final = 256
_servers: dict[tuple[str, str], tuple[str | None, int | None]] = {}


def _first(value: str | None) -> str | None:
    """The first of a header's comma-separated values (the one the client sent)."""
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


def _forwarded(forwarded: str | None, name: str) -> str | None:
    """Parameter ``name`` of the first element of a ``Forwarded`` header (RFC 7239)."""
    first = _first(forwarded)
    if first is None:
        return None
    for pair in first.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key.strip().lower() == name:
            return value.strip().strip('"') or None
    return None


def client_scheme(scheme: str, forwarded: str | None, forwarded_proto: str | None) -> str:
    """The scheme the client used: a proxy's report when it is ``http`` or ``https``,
    else ``scheme`` (the connection's)."""
    if not forwarded and not forwarded_proto:
        return scheme
    reported = _forwarded(forwarded, "proto") or _first(forwarded_proto)
    reported = reported.lower() if reported else None
    return reported if reported in _SCHEMES else scheme


def server(
    host: str | None,
    scheme: str,
    forwarded: str | None = None,
    forwarded_host: str | None = None,
) -> tuple[str | None, int | None]:
    """``(server.address, server.port)`` as the client addressed the server."""
    authority = _forwarded(forwarded, "host") or _first(forwarded_host) or host
    if not authority or len(authority) > _LONGEST:
        return None, None
    key = (authority, scheme)
    found = _servers.get(key)
    if found is None:
        found = _split(authority, _DEFAULT_PORTS.get(scheme))
        if len(_servers) >= _CACHE_LIMIT:
            _servers.clear()
        _servers[key] = found
    return found


def _split(authority: str, default: int | None) -> tuple[str | None, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port or ``default``)."""
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and (host.startswith("[") or ":" not in host):
        number = int(port)
        return host.strip("[]") or None, number if 0 < number < 65536 else default
    return authority.strip("[]") or None, default
