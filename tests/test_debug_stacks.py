"""Thread stacks through ``_compat.cpython``: the real frames where its probe says yes, the
threads alone (named, no stacks, no error) where it says no."""

from __future__ import annotations

import sys
import threading

import pytest

from unified_obs._compat import _probes, cpython
from unified_obs.debug._stacks import thread_stacks


@pytest.fixture
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """The probes' answers, emptied for the test and restored after it."""
    answers: dict[str, bool] = {}
    monkeypatch.setattr(_probes, "_answers", answers)
    return answers


def _parked_worker(ready: threading.Event, release: threading.Event) -> None:
    ready.set()
    release.wait(30)


def _stacks_with_a_parked_thread() -> str:
    ready, release = threading.Event(), threading.Event()
    worker = threading.Thread(
        target=_parked_worker, args=(ready, release), name="parked-worker", daemon=True
    )
    worker.start()
    try:
        assert ready.wait(10)
        return thread_stacks()
    finally:
        release.set()
        worker.join(10)


def test_the_probe_accepts_cpython(fresh_probes: dict[str, bool]) -> None:
    """On CPython the probe says yes, and each thread's block shows where it waits."""
    listing = _stacks_with_a_parked_thread()
    assert fresh_probes[cpython.CURRENT_FRAMES] is True
    assert "'parked-worker' daemon:\n" in listing
    assert "in _parked_worker" in listing


def test_an_interpreter_without_thread_frames_lists_the_threads_alone(
    fresh_probes: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``sys._current_frames`` does not find the calling thread (as on an interpreter
    that lacks it), the probe says no and the listing names every thread without a stack."""
    monkeypatch.setattr(sys, "_current_frames", lambda: {})
    listing = _stacks_with_a_parked_thread()
    assert fresh_probes[cpython.CURRENT_FRAMES] is False
    assert cpython.current_frames() is None
    assert "'parked-worker' daemon:\n  (stack unavailable" in listing
    assert "'MainThread':\n  (stack unavailable" in listing
    assert " in _parked_worker" not in listing


def test_a_probe_that_breaks_falls_back(
    fresh_probes: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``sys._current_frames`` that raises is a layout the probe does not know: the public
    fallback is used, and the listing still answers."""

    def broken() -> dict[int, object]:
        raise RuntimeError("not on this interpreter")

    monkeypatch.setattr(sys, "_current_frames", broken)
    assert cpython.current_frames() is None
    assert "(stack unavailable" in thread_stacks()
