"""CPython's underscored ``sys`` names, behind a probe: the current frame of every thread.

* ``cpython.current_frames``: ``sys._current_frames()`` maps each thread's identifier to
  its topmost frame (documented in the ``sys`` reference, yet underscored and specific to
  CPython: other interpreters may lack it or answer with less).  The probe calls it and
  checks that it finds the calling thread in the probe's own frame.  Fallback: ``None``,
  and ``/debug/threads`` lists the threads without their stacks.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Final

from ._probes import decide, register

__all__ = ["CURRENT_FRAMES", "current_frames"]

CURRENT_FRAMES: Final = "cpython.current_frames"


def current_frames() -> dict[int, FrameType] | None:
    """Every thread's topmost frame by thread identifier, or ``None`` where the probe says
    this interpreter does not give them."""
    if not decide(CURRENT_FRAMES, _current_frames_work):
        return None
    return sys._current_frames()


def _current_frames_work() -> bool:
    here = sys._current_frames().get(threading.get_ident())
    return isinstance(here, FrameType) and here.f_code is _current_frames_work.__code__


register({CURRENT_FRAMES: _current_frames_work})
