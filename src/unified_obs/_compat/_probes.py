"""The probe registry: each fast path's answer, decided once and logged at debug level."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["HoldingExporter", "decide", "forget", "probes", "register"]

_logger: Final = logging.getLogger("unified_obs")
_answers: dict[str, bool] = {}
_probes: dict[str, Callable[[], bool]] = {}


def decide(path: str, probe: Callable[[], bool]) -> bool:
    """Whether fast path ``path`` is active: ``probe()`` run once (an exception means no),
    its answer cached and logged at debug level."""
    _probes.setdefault(path, probe)
    answer = _answers.get(path)
    if answer is None:
        try:
            answer = bool(probe())
        except Exception:  # a probe that breaks is a layout we do not know
            answer = False
        _answers[path] = answer
        _logger.debug("unified_obs: %s: %s", path, "fast path" if answer else "public API")
    return answer


def register(probes: dict[str, Callable[[], bool]]) -> None:
    """Make ``probes`` (fast path name -> probe) known to :func:`active_paths`."""
    for path, probe in probes.items():
        _probes.setdefault(path, probe)


def probes() -> dict[str, Callable[[], bool]]:
    """Every registered probe, by fast path name."""
    return dict(_probes)


def forget() -> None:
    """Drop the cached answers (tests that swap a probe's subject)."""
    _answers.clear()


class HoldingExporter:
    """A probe's stand-in exporter whose first export waits (at most 5 s) until released:
    the batch worker is held, so a probe can fill the queue behind it.  ``export`` answers
    ``result``."""

    def __init__(self, started: threading.Event, release: threading.Event, result: Any = None):
        self.started, self.release, self.result = started, release, result

    def export(self, batch: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        self.release.wait(5)
        return self.result

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.release.set()

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return True
