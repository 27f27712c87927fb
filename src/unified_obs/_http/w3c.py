"""The W3C propagation headers of an inbound request, read per the specifications.

Every inbound path (ASGI, WSGI, gRPC metadata) hands the lines it received to
:func:`carrier`, which returns what the OpenTelemetry propagators should extract from:

- ``traceparent`` (W3C Trace Context level 2): exactly one is valid.  Two or more lines,
  or one holding a list (a server joined repeated lines with ``,``), are invalid: the
  request starts a new trace, and ``tracestate`` is ignored with it (a vendor that fails
  to parse ``traceparent`` must not parse ``tracestate``).
- ``tracestate``: repeated lines are combined in order (RFC 9110 field order); empty
  list members are dropped; beyond 32 members whole members are removed, those longer
  than 128 characters first, then from the end (the specification's truncation rule;
  the OpenTelemetry API would discard the whole header instead).
- ``baggage`` (W3C Baggage): repeated lines are combined in order; beyond 8192
  characters whole members are dropped from the end (the API would discard all).

Each line longer than :data:`MAX_LINE` is ignored before any work is done on it.  Pure
functions; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["MAX_LINE", "NAMES", "carrier", "plain"]

NAMES: Final = frozenset(("traceparent", "tracestate", "baggage"))
"""The header names (lowercase) :func:`carrier` reads."""
MAX_LINE: Final = 8192
"""Characters of one header line beyond which it is ignored unread."""
_MAX_MEMBERS: Final = 32
_LONG_MEMBER: Final = 128
_MAX_COMBINED: Final = 8192
_OWS: Final = " \t"


def carrier(lines: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """The carrier to extract from, given every ``(lowercase name, value)`` line of the
    request that :data:`NAMES` names (others are skipped); ``None`` when nothing is left."""
    found: dict[str, list[str]] = {}
    for name, value in lines:
        if name in NAMES and len(value) <= MAX_LINE:
            found.setdefault(name, []).append(value)
    result: dict[str, str] = {}
    parent = _traceparent(found.get("traceparent", []))
    if parent is not None:
        result["traceparent"] = parent
        state = _members(found.get("tracestate", []), _MAX_MEMBERS, by_length=True)
        if state:
            result["tracestate"] = state
    baggage = _members(found.get("baggage", []), None, by_length=False)
    if baggage:
        result["baggage"] = baggage
    return result or None


def plain(lines: Sequence[tuple[str, object]]) -> bool:
    """Whether the propagators may read ``lines`` as they are: each name once, a text
    value within :data:`MAX_LINE`, no list in ``traceparent``, at most 32
    ``tracestate`` members (the common case, decided without splitting anything)."""
    names = [name for name, _ in lines]
    if len(set(names)) != len(names):
        return False
    for name, value in lines:
        if not isinstance(value, str) or len(value) > MAX_LINE:
            return False
        if name == "traceparent" and "," in value:
            return False
        if name == "tracestate" and value.count(",") >= _MAX_MEMBERS:
            return False
    return True


def _traceparent(values: list[str]) -> str | None:
    if len(values) != 1 or "," in values[0]:
        return None
    return values[0]


def _members(values: list[str], most: int | None, *, by_length: bool) -> str:
    """The lines combined into one list: empty members dropped, then whole members
    removed until at most ``most`` remain and the list fits :data:`_MAX_COMBINED`
    characters (with ``by_length``, members over 128 characters go first)."""
    members = [m.strip(_OWS) for value in values for m in value.split(",")]
    members = [m for m in members if m]
    if most is not None and len(members) > most:
        if by_length:
            members = _without_long(members, len(members) - most)
        del members[most:]
    return ",".join(_fitting(members, _MAX_COMBINED))


def _without_long(members: list[str], excess: int) -> list[str]:
    """``members`` without up to ``excess`` of those over 128 characters (the last ones)."""
    long = [i for i, m in enumerate(members) if len(m) > _LONG_MEMBER]
    dropped = set(long[-excess:])
    return [m for i, m in enumerate(members) if i not in dropped]


def _fitting(members: list[str], budget: int) -> list[str]:
    """The leading members whose list (with its commas) fits ``budget`` characters."""
    used = -1  # the first member needs no comma
    for count, member in enumerate(members):
        used += len(member) + 1
        if used > budget:
            return members[:count]
    return members
