"""Reading an ``itertools.count`` without advancing it.

Counts tick without a lock (``next`` is one C call, atomic under the GIL), which makes
them the cheapest thread-safe counters on a request path: the in-flight count of the
shutdown sequence and the in-flight gauges use them.
"""

from __future__ import annotations

import itertools

__all__ = ["peek"]


def peek(counter: itertools.count[int]) -> int:
    """The next value ``counter`` will give, without taking it (from its ``repr``,
    ``count(N)``: stable, unlike its pickling support, deprecated in Python 3.12)."""
    return int(repr(counter)[6:-1])
