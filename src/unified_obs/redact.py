"""One redaction policy for log fields, span attributes, headers and URLs.

A key is sensitive when its normalised name contains one of the patterns below
(``password``, ``api_key``, ``authorization``, ``cookie`` ...).  Decisions are
cached per key, so the common case costs a dictionary lookup.

The process's policy (:func:`policy`) adds the keys ``setup(redact_keys=...)`` names:
``setup()`` pushes them here (:func:`configure`), and the modules that redact read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

__all__ = ["REDACTED", "Redactor"]

REDACTED: Final = "[REDACTED]"

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
_MAX_DEPTH: Final = 32  # nested dicts deeper than this are left as they are


class Redactor:
    """Decides which keys are sensitive and replaces their values with ``[REDACTED]``."""

    __slots__ = ("_cache", "_regex", "_safe", "_sensitive")

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        extra = tuple(re.escape(_normalise(k)) for k in extra_keys)
        self._regex = re.compile("|".join(_PATTERNS + extra))
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

    def fields(
        self, fields: MutableMapping[str, Any], _depth: int = _MAX_DEPTH
    ) -> MutableMapping[str, Any]:
        """Redact ``fields`` in place (nested dicts too, to a bounded depth, so a
        self-referencing dict cannot recurse forever) and return it.

        Hot path of every log line: when every key was seen before and found safe, one
        key-view test in C that allocates nothing decides the line; only new keys go
        through the regular expression.
        """
        keys = fields.keys()
        if not keys <= self._safe:  # a sensitive key, or one never seen (rare)
            for key in [k for k in keys if k not in self._safe]:
                if isinstance(key, str) and self.is_sensitive(key):  # cached decision first
                    fields[key] = REDACTED
        if _depth > 0 and dict in map(type, fields.values()):
            for value in fields.values():
                if type(value) is dict:
                    self.fields(value, _depth - 1)
        return fields

    def mapping(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of ``values`` (one level)."""
        return {k: REDACTED if self.is_sensitive(k) else v for k, v in values.items()}

    def query(self, query: str) -> str:
        """A query string with the values of sensitive parameters replaced."""
        if not query:
            return query
        pairs = parse_qsl(query, keep_blank_values=True)
        return urlencode([(k, REDACTED if self.is_sensitive(k) else v) for k, v in pairs])


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


_policy = Redactor()


def policy() -> Redactor:
    """The process's policy: the built-in patterns plus ``setup(redact_keys=...)``."""
    return _policy


def configure(extra_keys: Iterable[str] = ()) -> None:
    """Make ``extra_keys`` sensitive process-wide, besides the built-in patterns (called by
    ``setup()``, and with none by ``testing.reset()``)."""
    global _policy
    _policy = Redactor(extra_keys)
