"""wrapt's private names, behind a probe: wrappers of plain functions without a per-call cost.

* ``wrapt.static_binding``: for its ``function`` binding wrapt probes
  ``wrapped.__self__`` on every call of an unbound function, which raises and clears an
  ``AttributeError`` (about 0.6 µs).  The decorators' wrappers never need the instance of
  a plain function, so :class:`LeanFunctionWrapper` re-initialises wrapt's private base
  (``FunctionWrapper.__mro__[1]``, ``_FunctionWrapperBase``) with the ``staticmethod``
  binding, which calls straight through; methods still bind through wrapt's descriptor
  logic.  The probe wraps a function and a method, calls both (directly, through an
  instance and through the class) and checks what the wrapper saw.  Fallback: wrapt's own
  ``FunctionWrapper`` binding (the same calls, the probe's cost on each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import wrapt

from ._probes import decide, register

__all__ = ["STATIC_BINDING", "LeanFunctionWrapper"]

STATIC_BINDING: Final = "wrapt.static_binding"

if TYPE_CHECKING:
    _Base = wrapt.FunctionWrapper[..., Any]  # generic from wrapt 2; not subscriptable before
else:
    _Base = wrapt.FunctionWrapper


def _rebind_static(proxy: Any, wrapped: Any, wrapper: Any) -> None:
    """wrapt's private base ``__init__`` again, with the ``staticmethod`` binding."""
    base: Any = wrapt.FunctionWrapper.__mro__[1]
    base.__init__(proxy, wrapped, None, wrapper, None, "staticmethod")


class LeanFunctionWrapper(_Base):
    """``wrapt.FunctionWrapper`` whose plain functions skip wrapt's per-call ``__self__``
    probe (where the ``wrapt.static_binding`` probe says the private base allows it)."""

    __bound_function_wrapper__ = wrapt.BoundFunctionWrapper

    def __init__(self, wrapped: Any, wrapper: Any) -> None:
        super().__init__(wrapped, wrapper)
        if self._self_binding == "function" and decide(STATIC_BINDING, _static_binding_works):
            _rebind_static(self, wrapped, wrapper)


class _Plain(_Base):
    """What the probe re-binds by hand (``LeanFunctionWrapper`` would ask the probe)."""

    __bound_function_wrapper__ = wrapt.BoundFunctionWrapper


def _static_binding_works() -> bool:
    seen: list[tuple[Any, tuple[Any, ...]]] = []

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        seen.append((instance, args))
        return wrapped(*args, **kwargs)

    def add(a: int, b: int) -> int:
        return a + b

    def method(self: object, a: int) -> tuple[object, int]:
        return self, a

    function = _Plain(add, wrapper)
    bound_method = _Plain(method, wrapper)
    if function._self_binding != "function" or bound_method._self_binding != "function":
        return False
    _rebind_static(function, add, wrapper)
    _rebind_static(bound_method, method, wrapper)
    owner: Any = type("Owner", (), {"method": bound_method})
    instance = owner()
    results = (function(2, 3), instance.method(4), owner.method(instance, 5))
    return (
        results == (5, (instance, 4), (instance, 5))
        and function.__wrapped__ is add
        and function._self_binding == "staticmethod"
        and seen[0] == (None, (2, 3))
    )


register({STATIC_BINDING: _static_binding_works})
