"""``record_args``: chosen argument values as span attributes, redacted and bounded.

Positions are resolved once from the signature, so a call only indexes ``args`` or
looks up ``kwargs`` (no ``Signature.bind``).  Values under a sensitive name, and
sensitive keys inside mappings, become ``[REDACTED]``; strings are cut to
``MAX_LENGTH`` characters and anything else is shown through a bounded ``repr``.
"""

from __future__ import annotations

import inspect
import reprlib
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from .. import redact
from ..errors import ConfigError
from ..redact import REDACTED, Redactor, scrub_urls

__all__ = ["MAX_LENGTH", "ArgumentRecorder", "bounded"]

MAX_LENGTH: Final = 256
"""Longest recorded argument value, in characters."""
_MISSING: Final = object()
_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = MAX_LENGTH
_repr.maxother = MAX_LENGTH


class ArgumentRecorder:
    """Reads the arguments named in ``record_args`` from one call."""

    __slots__ = ("_wanted",)

    def __init__(self, wanted: tuple[tuple[str, int, Any], ...]) -> None:
        self._wanted = wanted  # (name, position or -1, default or _MISSING)

    @classmethod
    def for_function(cls, fn: Callable[..., Any], names: Sequence[str]) -> ArgumentRecorder | None:
        """A recorder for ``names`` of ``fn`` (``None`` when there are none).

        Raises ``ConfigError`` at decoration time when a name is not a parameter of ``fn``
        (``*args`` and ``**kwargs`` cannot be recorded), naming the function, its
        parameters and every unknown name.
        """
        if isinstance(names, str):
            names = (names,)
        if not names:
            return None
        parameters = inspect.signature(fn).parameters
        recordable = [
            p.name for p in parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        unknown = [name for name in names if name not in recordable]
        if unknown:
            raise ConfigError(
                "record_args",
                tuple(names),
                f"parameter names of {_qualified_name(fn)}({', '.join(recordable)});"
                f" it has no parameter {', '.join(map(repr, unknown))}",
            )
        positional = [
            p.name
            for p in parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        wanted = []
        for name in names:
            parameter = parameters[name]
            position = positional.index(name) if name in positional else -1
            default = _MISSING if parameter.default is parameter.empty else parameter.default
            wanted.append((name, position, default))
        return cls(tuple(wanted))

    def values(
        self, wrapped: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, AttributeValue]:
        """``{"arg.<name>": value}`` for this call (a bound method hides its first parameter)."""
        shift = 1 if isinstance(wrapped, types.MethodType) else 0
        redactor = redact.policy()
        recorded: dict[str, AttributeValue] = {}
        for name, position, default in self._wanted:
            if name in kwargs:
                value = kwargs[name]
            elif 0 <= position - shift < len(args):
                value = args[position - shift]
            else:
                value = default
            if value is _MISSING:
                continue
            recorded["arg." + name] = (
                REDACTED if redactor.is_sensitive(name) else bounded(value, redactor)
            )
        return recorded


def _qualified_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of the function under any wrappers (never a wrapper's repr)."""
    target = inspect.unwrap(fn)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def bounded(value: Any, redactor: Redactor) -> AttributeValue:
    """``value`` as an attribute value of bounded size: sensitive mapping keys redacted,
    in mappings inside lists and tuples too, and the user-info of URLs in the text."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        value = value if len(value) <= MAX_LENGTH else value[: MAX_LENGTH - 3] + "..."
        return scrub_urls(value)
    if isinstance(value, Mapping):
        value = _redact_mapping(value, redactor, depth=_repr.maxlevel)
    elif isinstance(value, (list, tuple)):
        value = redactor.nested(value, depth=_repr.maxlevel)
    try:
        text = _repr.repr(value)
    except Exception:  # a user __repr__ that raises
        text = f"<{type(value).__name__}>"
    return scrub_urls(text if len(text) <= MAX_LENGTH else text[: MAX_LENGTH - 3] + "...")


def _redact_mapping(value: Mapping[Any, Any], redactor: Redactor, depth: int) -> dict[Any, Any]:
    """A copy of (the first items of) ``value`` with sensitive keys redacted, nested too."""
    copied: dict[Any, Any] = {}
    for index, (key, item) in enumerate(value.items()):
        if index > _repr.maxdict:  # one more than shown, so the repr ends with "..."
            break
        if isinstance(key, str) and redactor.is_sensitive(key):
            copied[key] = REDACTED
        elif isinstance(item, Mapping) and depth > 1:
            copied[key] = _redact_mapping(item, redactor, depth - 1)
        else:
            copied[key] = item
    return copied
