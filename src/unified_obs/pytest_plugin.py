"""pytest plugin with two fixtures; enable it in your root ``conftest.py``::

    pytest_plugins = ["unified_obs.pytest_plugin"]

    def test_order_is_logged(obs_capture):
        create_order()
        assert obs_capture.logs[-1]["event"] == "order.created"

- ``obs_capture``: telemetry captured in memory for one test (a clean process before and
  after); uses the test's own ``setup()`` if it made one first.
- ``obs_reset``: only the clean process before and after the test.

It is opt-in rather than a ``pytest11`` entry point on purpose: entry-point plugins are
imported before pytest-cov starts measuring, which would hide the package's module-level
lines from your coverage report.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import Captured, capture, reset

__all__ = ["obs_capture", "obs_reset"]


@pytest.fixture
def obs_reset() -> Iterator[None]:
    """A clean process (no setup, OpenTelemetry globals unset) before and after the test."""
    reset()
    try:
        yield
    finally:
        reset()


@pytest.fixture
def obs_capture(obs_reset: None) -> Iterator[Captured]:
    """Spans and log records of this test, in memory, with nothing exported."""
    with capture() as captured:
        yield captured
