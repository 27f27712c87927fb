"""The series a PromQL query selects: its vector selectors, read without evaluating it.

Enough to read the SLI queries of a Sloth or OpenSLO spec back into one of our objectives
(:mod:`._foreign_sli`): ``sum(rate(x_count{a="b"}[{{.window}}])) by (c)`` selects
``x_count`` with the matcher ``a="b"``.  Range and grouping brackets are dropped first, a
name followed by ``(`` is a function, and PromQL's keywords are not metrics.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Final

from ..errors import ConfigError

__all__ = ["Matcher", "Selector", "selectors"]

_RANGES: Final = re.compile(r"\[[^\]]*\]")
_GROUPING: Final = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_STRING: Final = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
_TOKEN: Final = re.compile(
    rf"(?P<string>{_STRING})"
    rf"|(?<![A-Za-z0-9_.:])(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?P<braces>\{{(?:{_STRING}|[^}}\"'`])*\}})?"
    r"(?P<call>\s*\()?"
)
_MATCHER: Final = re.compile(
    rf"\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>{_STRING})\s*(?:,|$)"
)
_KEYWORDS: Final = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
)


@dataclass(frozen=True, order=True)
class Matcher:
    """``label op "value"`` with ``op`` one of ``=``, ``!=``, ``=~``, ``!~``."""

    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    """One vector selector: the metric name and its label matchers."""

    metric: str
    matchers: frozenset[Matcher]


def selectors(field: str, query: object) -> list[Selector]:
    """Every vector selector of ``query``, in order; ``ConfigError`` naming ``field`` when
    a matcher cannot be read."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(field, query, "a PromQL query")
    text = _GROUPING.sub(" ", _RANGES.sub(" ", query))
    found = []
    for token in _TOKEN.finditer(text):
        name = token.group("name")
        if name is None or token.group("call") or name.lower() in _KEYWORDS:
            continue
        found.append(Selector(name, _matchers(field, token.group("braces") or "{}")))
    return found


def _matchers(field: str, braces: str) -> frozenset[Matcher]:
    body = braces[1:-1].strip()
    found: set[Matcher] = set()
    at = 0
    while at < len(body):
        match = _MATCHER.match(body, at)
        if match is None:
            raise ConfigError(field, braces, 'label matchers such as {job="shop"}')
        quoted = match["value"]
        # a raw (backtick) string is its text as written; the others unescape as Python's do
        value = quoted[1:-1] if quoted[0] == "`" else str(ast.literal_eval(quoted))
        found.add(Matcher(match["label"], match["op"], value))
        at = match.end()
    return frozenset(found)
