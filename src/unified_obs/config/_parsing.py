"""Pure parsers and validators for configuration values.

Each ``Kind`` knows two things: how to check a value given in code (raise
``ConfigError`` naming what is accepted) and how to read the same value from an
environment string (return ``_INVALID`` so the caller warns and falls back).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..redact import REDACTED, policy, scrub_urls

__all__ = ["INVALID", "Kind"]


class _Invalid:
    """Marker for an environment value that could not be parsed."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


@dataclass(frozen=True, slots=True)
class Kind:
    """How one configuration value is validated (code) and parsed (environment)."""

    name: str
    accepted: str
    choices: tuple[str, ...] = ()
    low: float = -math.inf
    high: float = math.inf
    env_scale: float = 1.0  # env value times this gives the code unit (ms -> s)
    env_accepted: str = ""
    """What the environment variable accepts, when its unit differs from the code's."""

    @property
    def accepted_in_environment(self) -> str:
        """What an environment string must be (``accepted``, unless the unit differs)."""
        return self.env_accepted or self.accepted

    def check(self, field: str, value: Any, *, secret: bool = False) -> Any:
        """Validate ``value`` given in code; return it normalised or raise ``ConfigError``."""
        result = _CHECKERS[self.name](self, value)
        if result is INVALID:
            raise ConfigError(field, self.shown(value), self.accepted, secret=secret)
        return result

    def shown(self, value: Any) -> Any:
        """``value`` as an error may show it: the user-info of any URL in it masked (for
        a URL, whatever precedes its last ``@``, even without a ``scheme://``), and inside
        a container (a list, a mapping) also the values under sensitive keys."""
        if not isinstance(value, str):
            return _Shown(value)
        value = scrub_urls(value)
        if self.name == "url" and "@" in value:
            scheme, sep, rest = value.rpartition("://")
            value = f"{scheme}{sep}{REDACTED}@{rest.rpartition('@')[2]}"
        return value

    def parse(self, text: str) -> Any:
        """Parse an environment string; ``INVALID`` when it cannot be used."""
        result = _PARSERS[self.name](self, text.strip())
        if result is INVALID:
            return INVALID
        return self.check_quiet(result)

    def check_quiet(self, value: Any) -> Any:
        """Like :meth:`check` but answers ``INVALID`` instead of raising."""
        return _CHECKERS[self.name](self, value)


class _Shown:
    """A value whose ``repr`` is the value's own, with secrets masked (for errors)."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        try:
            return scrub_urls(repr(policy().nested(self._value)))
        except Exception:  # a user object whose __repr__ raises
            return f"<{type(self._value).__name__}>"


def _check_str(kind: Kind, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        return INVALID
    return value.strip()


def _check_choice(kind: Kind, value: Any) -> Any:
    if not isinstance(value, str) or value.strip().lower() not in kind.choices:
        return INVALID
    return value.strip().lower()


def _check_bool(kind: Kind, value: Any) -> Any:
    return value if isinstance(value, bool) else INVALID


def _check_number(kind: Kind, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return INVALID
    if not math.isfinite(value) or not kind.low <= value <= kind.high:
        return INVALID
    return value


def _check_int(kind: Kind, value: Any) -> Any:
    return INVALID if not isinstance(value, int) else _check_number(kind, value)


def _check_mapping(kind: Kind, value: Any) -> Any:
    if not isinstance(value, Mapping):
        return INVALID
    if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
        return INVALID
    return dict(value)


def _check_list(kind: Kind, value: Any) -> Any:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return INVALID
    items = tuple(str(v).strip().lower() if isinstance(v, str) else "" for v in value)
    if any(not item for item in items):
        return INVALID
    if kind.choices and any(item not in kind.choices for item in items):
        return INVALID
    return items


_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP token (RFC 9110): what a method name may be made of."""


def _check_tokens(kind: Kind, value: Any) -> Any:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return INVALID
    items = tuple(v.strip() if isinstance(v, str) else "" for v in value)
    if any(_TOKEN.fullmatch(item) is None for item in items):
        return INVALID
    return items


def _parse_tokens(kind: Kind, text: str) -> Any:
    return _check_tokens(kind, [item for item in text.split(",") if item.strip()])


def _check_url(kind: Kind, value: Any) -> Any:
    if not isinstance(value, str):
        return INVALID
    try:
        parts = urlsplit(value.strip())
        port = parts.port  # raises ValueError on a port beyond 65535 or not a number
    except ValueError:
        return INVALID
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return INVALID
    return value.strip()


def _parse_identity(kind: Kind, text: str) -> Any:
    return text


def _parse_bool(kind: Kind, text: str) -> Any:
    lowered = text.lower()
    return {"true": True, "false": False}.get(lowered, INVALID)


def _parse_number(kind: Kind, text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return INVALID
    return number * kind.env_scale


def _parse_int(kind: Kind, text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return INVALID


def parse_pairs(text: str) -> dict[str, str] | _Invalid:
    """Parse ``k1=v1,k2=v2`` (values percent-decoded), as OTel headers and attributes use."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            return INVALID
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def _parse_mapping(kind: Kind, text: str) -> Any:
    return parse_pairs(text)


def _parse_list(kind: Kind, text: str) -> Any:
    return tuple(item.strip().lower() for item in text.split(",") if item.strip())


_CHECKERS: Final = {
    "str": _check_str,
    "choice": _check_choice,
    "bool": _check_bool,
    "float": _check_number,
    "int": _check_int,
    "mapping": _check_mapping,
    "list": _check_list,
    "url": _check_url,
    "tokens": _check_tokens,
}
_PARSERS: Final = {
    "str": _parse_identity,
    "choice": _parse_identity,
    "bool": _parse_bool,
    "float": _parse_number,
    "int": _parse_int,
    "mapping": _parse_mapping,
    "list": _parse_list,
    "url": _parse_identity,
    "tokens": _parse_tokens,
}


def text() -> Kind:
    """A non-empty string of at most 255 characters."""
    return Kind("str", "a non-empty string of at most 255 characters")


def choice(*options: str) -> Kind:
    """One of ``options`` (case-insensitive)."""
    return Kind("choice", "one of: " + ", ".join(options), choices=options)


def flag() -> Kind:
    """``True`` or ``False`` (environment: ``true``/``false``)."""
    return Kind("bool", "True or False")


def number(
    low: float,
    high: float,
    *,
    unit: str = "seconds",
    env_scale: float = 1.0,
    env_unit: str = "milliseconds",
) -> Kind:
    """A finite number of ``unit`` in ``[low, high]``; in the environment, a number of
    ``env_unit`` when ``env_scale`` is not 1 (``env_scale=1e-3``: milliseconds -> seconds)."""
    env_accepted = ""
    if env_scale != 1.0:
        env_low, env_high = _plain(low / env_scale), _plain(high / env_scale)
        env_accepted = f"a number of {env_unit} from {env_low} to {env_high}"
    return Kind(
        "float",
        f"a number of {unit} from {low:g} to {high:g}",
        low=low,
        high=high,
        env_scale=env_scale,
        env_accepted=env_accepted,
    )


def _plain(number: float) -> str:
    """``number`` written out without an exponent or float noise (3600000, not 3.6e+06)."""
    return f"{round(number, 6):f}".rstrip("0").rstrip(".")


def integer(low: int, high: int) -> Kind:
    """A whole number in ``[low, high]``."""
    return Kind("int", f"a whole number from {low} to {high}", low=low, high=high)


def mapping() -> Kind:
    """A mapping of non-empty string keys to string values."""
    return Kind("mapping", "a mapping of str to str (environment: k1=v1,k2=v2)")


def names(*options: str) -> Kind:
    """A list of names, each one of ``options`` when given."""
    accepted = "a list of names" + (" from: " + ", ".join(options) if options else "")
    return Kind("list", accepted, choices=options)


def tokens(accepted: str) -> Kind:
    """A list of case-sensitive tokens (HTTP method names), kept as written."""
    return Kind("tokens", accepted)


def url() -> Kind:
    """An absolute ``http://`` or ``https://`` URL."""
    return Kind("url", "an http:// or https:// URL with a host, e.g. http://127.0.0.1:4318")
