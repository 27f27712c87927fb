"""Shared fixtures: every test starts and ends with a clean process."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from unified_obs.testing import reset


@pytest.fixture(autouse=True)
def _clean_process() -> Iterator[None]:
    """Reset unified_obs, OTel globals and logging around every test."""
    reset()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    reset()
    root.handlers[:] = handlers
    root.setLevel(level)
