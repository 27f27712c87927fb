"""The effective configuration, field by field: its value (secrets masked) and its source.

Pure: it takes the resolved ``Settings``, the environment it was read from and the names
given in code, and never raises.  What is masked, always (no switch reveals it):

- values of secret fields (the OTLP headers): the header names stay, each value is ``***``;
- in URLs: the user-info (``user:password@``), the query string and the fragment;
- values of mappings (resource attributes) under keys the redaction policy calls secret.

``doctor`` prints this table and the debug endpoint ``/debug/config`` serves it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from .. import redact

__all__ = ["MASK", "Entry", "describe", "mask_url"]

MASK: Final = "***"
Source = Literal["argument", "environment", "default", "default (environment value ignored)"]


class _Kind(Protocol):
    @property
    def name(self) -> str: ...

    def parse(self, text: str) -> Any: ...


class _Spec(Protocol):
    """One row of the settings table (``config._Spec``): variable, kind, secrecy."""

    @property
    def env(self) -> str | None: ...

    @property
    def kind(self) -> _Kind: ...

    @property
    def secret(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One setting as it is in force: name, environment variable, shown value, source."""

    name: str
    env: str | None
    value: Any  # JSON-ready (str, number, bool, None, list, dict), secrets masked
    source: Source

    def as_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dictionary."""
        return dataclasses.asdict(self)


def describe(
    settings: Any,
    specs: Mapping[str, _Spec],
    environ: Mapping[str, str],
    arguments: Collection[str],
    invalid: object,
) -> list[Entry]:
    """Every field of ``settings`` in table order; ``invalid`` is the parsers' marker for
    an environment value that could not be used."""
    return [
        Entry(
            name,
            spec.env,
            _shown(spec, getattr(settings, name)),
            _source(name, spec, environ, arguments, invalid),
        )
        for name, spec in specs.items()
    ]


def _source(
    name: str, spec: _Spec, environ: Mapping[str, str], arguments: Collection[str], invalid: object
) -> Source:
    if name in arguments:
        return "argument"
    raw = environ.get(spec.env, "") if spec.env else ""
    if not raw.strip():
        return "default"
    if spec.kind.parse(raw) is invalid:
        return "default (environment value ignored)"
    return "environment"


def _shown(spec: _Spec, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        if spec.secret:
            return dict.fromkeys(map(str, value), MASK)
        policy = redact.policy()
        return {str(k): MASK if policy.is_sensitive(str(k)) else str(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [str(item) for item in value]
    text = str(value)
    if spec.secret:
        return MASK
    return mask_url(text) if spec.kind.name == "url" else text


def mask_url(url: str) -> str:
    """``url`` without its secrets: user-info becomes ``***@``, a query string ``?***``, the
    fragment is dropped.  Scheme, host, port and path stay (they are what a reader checks).
    Never raises: text that is not a URL with a host is masked whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK  # not a URL: nothing in it is known to be safe
    _, at, host = parts.netloc.rpartition("@")
    query = f"?{MASK}" if parts.query else ""
    return f"{parts.scheme}://{MASK + '@' if at else ''}{host}{parts.path}{query}"
