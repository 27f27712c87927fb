"""One redaction policy for log fields, span attributes, headers and URLs.

A key is sensitive when its normalised name contains one of the patterns below
(``password``, ``api_key``, ``authorization``, ``cookie`` ...).  Decisions are
cached per key, so the common case costs a dictionary lookup.

Values are looked at too, where a secret hides in text: the user-info of anything
shaped like a URL (``postgres://user:pw@db``) becomes ``[REDACTED]@``, and so does the
value of a sensitive query parameter in text (``?token=...``, :func:`scrub_urls`).
Nested containers (dicts, lists, tuples) are redacted to a bounded depth, and copied
where something changes, so the caller's own objects are never modified.

The process's policy (:func:`policy`) adds the keys ``setup(redact_keys=...)`` names:
``setup()`` pushes them here (:func:`configure`), and the modules that redact read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import quote, unquote_plus

__all__ = ["QUERY_LIMIT", "REDACTED", "Redactor", "scrub_json", "scrub_urls"]

REDACTED: Final = "[REDACTED]"
_QUERY_REDACTED: Final = quote(REDACTED)

_PATTERNS: Final = (
    r"pass(word|wd|phrase)?$|password|passwd|pwd",
    r"secret",
    r"token",
    r"auth(?!or(?!iz))",  # authorization, oauth, x-auth; not author or :authority
    r"credential",
    r"private[._-]?key",
    r"api[._-]?key",
    r"access[._-]?key",
    r"session",
    r"cookie",
    r"csrf|xsrf",
    r"jwt",
    r"signature|^sig$",
    r"ssn|social[._-]?security",
    r"credit[._-]?card|card[._-]?number|cvv|cvc",
)
_CACHE_LIMIT: Final = 4096
_MAX_DEPTH: Final = 32  # nested containers deeper than this are left as they are
_CONTAINERS: Final = frozenset((dict, list, tuple))
QUERY_LIMIT: Final = 4096
"""Characters of a query string looked at (the rest is dropped before it is parsed)."""
# scheme://userinfo@ : the user-info runs to the last "@" before the host's end, so a
# password holding a raw "@" is covered whole.
# In JSON text a string ends at an unescaped '"', and an escape is '\\' plus one character.
_URL_USERINFO_JSON: Final = re.compile(rb'([A-Za-z][A-Za-z0-9+.\-]*://)(?:[^\s/?#"\\]|\\.)*@')
_URL_USERINFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#]*@")
# ?key=value or &key=value inside text (a URL, or a path with its query, as urllib3 logs
# it); the value runs to the next parameter, fragment, space or quote.
_QUERY_PARAM: Final = re.compile(r"([?&])([^=&#\s?\"'<>]+)=([^&#\s\"'<>]*)")
_QUERY_PARAM_JSON: Final = re.compile(rb'([?&])([^=&#\s?"\\<>]+)=((?:[^&#\s"\\<>]|\\.)*)')


class Redactor:
    """Decides which keys are sensitive and replaces their values with ``[REDACTED]``."""

    __slots__ = ("_cache", "_regex", "_safe", "_sensitive", "query_limit")

    def __init__(self, extra_keys: Iterable[str] = (), *, query_limit: int = QUERY_LIMIT) -> None:
        extra = tuple(re.escape(_normalise(k)) for k in extra_keys)
        self._regex = re.compile("|".join(_PATTERNS + extra))
        self.query_limit = query_limit
        self._cache: dict[str, bool] = {}
        self._sensitive: set[str] = set()  # the cached keys that are sensitive
        self._safe: set[str] = set()  # the cached keys that are not

    def is_sensitive(self, key: str) -> bool:
        """Whether values under ``key`` must never be shown."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._regex.search(_normalise(key)) is not None
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = hit
                (self._sensitive if hit else self._safe).add(key)
        return hit

    def fields(self, fields: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Redact ``fields`` in place and return it.  Values that are dicts, lists or
        tuples are replaced by redacted copies when they hold something sensitive, to a
        bounded depth (so a self-referencing dict cannot recurse forever).

        Hot path of every log line: when every key was seen before and found safe, one
        key-view test in C that allocates nothing decides the line; only new keys go
        through the regular expression.
        """
        keys = fields.keys()
        if not keys <= self._safe:  # a sensitive key, or one never seen (rare)
            for key in [k for k in keys if k not in self._safe]:
                if isinstance(key, str) and self.is_sensitive(key):  # cached decision first
                    fields[key] = REDACTED
        if not _CONTAINERS.isdisjoint(map(type, fields.values())):
            for key, value in list(fields.items()):
                if type(value) in _CONTAINERS:
                    fields[key] = self.nested(value)
        return fields

    def nested(self, value: Any, depth: int = _MAX_DEPTH) -> Any:
        """``value`` with sensitive keys redacted in every dict it holds, through lists and
        tuples, ``depth`` levels down: the same object when nothing changes, else a copy."""
        kind = type(value)
        if depth <= 0 or kind not in _CONTAINERS:
            return value
        if kind is dict:
            return self._nested_dict(value, depth)
        items = [self.nested(item, depth - 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=False)):
            return value
        return items if kind is list else tuple(items)

    def _nested_dict(self, value: dict[Any, Any], depth: int) -> dict[Any, Any]:
        copied: dict[Any, Any] | None = None
        for key, item in value.items():
            sensitive = isinstance(key, str) and self.is_sensitive(key)
            new = REDACTED if sensitive else self.nested(item, depth - 1)
            if new is not item:
                copied = dict(value) if copied is None else copied
                copied[key] = new
        return value if copied is None else copied

    def mapping(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of ``values`` (one level)."""
        return {k: REDACTED if self.is_sensitive(k) else v for k, v in values.items()}

    def query(self, query: str) -> str:
        """A query string with the values of sensitive parameters replaced.

        Only the first :attr:`query_limit` characters are parsed (the rest is dropped
        first), so a huge query string costs no more than one at the limit.
        """
        if not query:
            return query
        parts = query[: self.query_limit].split("&")
        return "&".join(self._query_part(part) for part in parts)[: self.query_limit]

    def _query_part(self, part: str) -> str:
        """One ``key=value`` of a query: as sent, or with only its value replaced (the
        rest of the query keeps its encoding: ``%20`` stays ``%20``, ``flag`` stays
        ``flag``)."""
        key, sep, _ = part.partition("=")
        if sep and self.is_sensitive(unquote_plus(key)):
            return f"{key}={_QUERY_REDACTED}"
        return part

    def text(self, text: str) -> str:
        """``text`` with the user-info of every URL in it redacted (:func:`scrub_urls`)."""
        return scrub_urls(text)


def scrub_urls(text: str) -> str:
    """``text`` with the user-info of every URL-shaped part replaced, and the values of
    sensitive query parameters: ``postgres://app:pw@db/x`` becomes
    ``postgres://[REDACTED]@db/x``, ``/v1/logs?token=abc`` becomes
    ``/v1/logs?token=%5BREDACTED%5D``.  Text without ``://`` or ``?`` is returned as it is,
    without a regular expression."""
    if "://" in text:
        text = _URL_USERINFO.sub(r"\1" + REDACTED + "@", text)
    if "?" in text:
        text = _QUERY_PARAM.sub(_hide_query_value, text)
    return text


def scrub_json(line: bytes) -> bytes:
    """A rendered JSON line with the user-info of every URL in its strings and the values
    of sensitive query parameters replaced, the line still valid JSON (escaped characters
    are covered).  A line without ``://`` or ``?`` is returned as it is after two scans in
    C: the cost of a log line without a URL."""
    if b"://" in line:
        line = _URL_USERINFO_JSON.sub(rb"\1" + REDACTED.encode() + b"@", line)
    if b"?" in line:
        line = _QUERY_PARAM_JSON.sub(_hide_query_value_json, line)
    return line


def _hide_query_value(match: re.Match[str]) -> str:
    part = match[0][1:]  # key=value, judged as Redactor.query judges it
    shown = _policy._query_part(part)
    return match[0] if shown is part else match[1] + shown


def _hide_query_value_json(match: re.Match[bytes]) -> bytes:
    part = match[0][1:].decode("utf-8", "replace")
    shown = _policy._query_part(part)
    return match[0] if shown is part else match[1] + shown.encode()


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


_policy = Redactor()


def policy() -> Redactor:
    """The process's policy: the built-in patterns plus ``setup(redact_keys=...)``."""
    return _policy


def configure(extra_keys: Iterable[str] = (), *, query_limit: int = QUERY_LIMIT) -> None:
    """Make ``extra_keys`` sensitive process-wide, besides the built-in patterns, and parse
    at most ``query_limit`` characters of a query string (called by ``setup()``, and with
    the defaults by ``testing.reset()``)."""
    global _policy
    _policy = Redactor(extra_keys, query_limit=query_limit)
