"""Consistent probability sampling: randomness, thresholds and the ``ot=th:`` tracestate.

The OpenTelemetry specification (*tracestate probability sampling*) decides a span by
comparing 56 bits of randomness with a 56-bit rejection threshold: the span is kept when
``randomness >= threshold``, so its probability is ``(2**56 - threshold) / 2**56`` and
every service that compares the same randomness with the same threshold agrees.  The
randomness is the ``rv`` sub-key of the ``ot`` tracestate member when present, else the
trace id's rightmost 56 bits.  A kept span carries its threshold as ``ot=th:<hex>`` (at
most 14 hex digits, trailing zeros dropped; ``th:0`` is 100 %), which makes it
countable: its adjusted count is ``2**56 / (2**56 - threshold)``.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.trace import TraceState

__all__ = [
    "MAX_THRESHOLD",
    "adjusted_count",
    "encode_threshold",
    "parse_threshold",
    "randomness",
    "threshold_for",
    "with_threshold",
]

RANDOMNESS_BITS: Final = 56
MAX_THRESHOLD: Final = 1 << RANDOMNESS_BITS
"""The threshold that rejects everything (probability 0)."""
_MASK: Final = MAX_THRESHOLD - 1
_DIGITS: Final = RANDOMNESS_BITS // 4
_KEY: Final = "ot"


def randomness(trace_id: int, trace_state: TraceState | None = None) -> int:
    """The 56 bits a decision compares: ``rv`` from ``ot`` tracestate, else the trace id's."""
    explicit = _sub_key(trace_state, "rv")
    if explicit is not None and len(explicit) == _DIGITS:
        try:
            return int(explicit, 16)
        except ValueError:
            pass
    return trace_id & _MASK


def threshold_for(probability: float, precision_bits: int = 16) -> int:
    """The rejection threshold that keeps ``probability`` of all randomness values,
    rounded towards keeping less to ``precision_bits`` significant bits of the kept
    share (so ``th`` stays a few hex digits long and takes few distinct values; the
    decision uses the rounded value, so it stays exact).  ``probability`` is clamped to
    [0, 1]."""
    if probability >= 1.0:
        return 0
    if not probability > 0.0:  # NaN too
        return MAX_THRESHOLD
    kept = int(probability * MAX_THRESHOLD)
    drop = kept.bit_length() - precision_bits
    return MAX_THRESHOLD - (kept >> drop << drop if drop > 0 else kept)


def adjusted_count(threshold: int) -> float:
    """How many spans one kept span with ``threshold`` stands for."""
    return MAX_THRESHOLD / (MAX_THRESHOLD - threshold)


def encode_threshold(threshold: int) -> str:
    """``threshold`` as the specification writes it: 14 hex digits, trailing zeros dropped."""
    if threshold == 0:
        return "0"
    return f"{threshold:014x}".rstrip("0")


def parse_threshold(trace_state: TraceState | None) -> int | None:
    """The ``th`` of ``trace_state``'s ``ot`` member, or ``None`` if absent or malformed."""
    text = _sub_key(trace_state, "th")
    if text is None or not 0 < len(text) <= _DIGITS:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value << (4 * (_DIGITS - len(text)))


def with_threshold(trace_state: TraceState | None, threshold: int | None) -> TraceState:
    """``trace_state`` with its ``ot`` member's ``th`` set to ``threshold`` (erased when
    ``None``); other members and ``ot``'s other sub-keys are kept as they were."""
    state = trace_state if trace_state is not None else TraceState()
    parts = [p for p in (state.get(_KEY) or "").split(";") if p and not p.startswith("th:")]
    if threshold is not None:
        parts.insert(0, "th:" + encode_threshold(threshold))
    if not parts:
        return state.delete(_KEY) if _KEY in state else state
    value = ";".join(parts)
    return state.update(_KEY, value) if _KEY in state else state.add(_KEY, value)


def _sub_key(trace_state: TraceState | None, name: str) -> str | None:
    if not trace_state:
        return None
    member = trace_state.get(_KEY)
    if not member:
        return None
    prefix = name + ":"
    for part in member.split(";"):
        if part.startswith(prefix):
            return part[len(prefix) :]
    return None
