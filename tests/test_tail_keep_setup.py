"""Keeping dropped failures, as ``setup()`` and ``testing.capture`` wire it: the promoted
spans reach the exporter and the test capture, and are counted."""

from __future__ import annotations

from typing import Any

import pytest

import unified_obs as obs
from unified_obs.testing import capture
from unified_obs.tracing._tail_keep import PROMOTED_REASON

DROP_ALL: dict[str, Any] = {"traces_sampler": "parentbased_traceidratio", "traces_sampler_arg": 0}


def _fail_in_a_span() -> None:
    with obs.span("failing"):
        raise RuntimeError("boom")


def test_capture_sees_the_failed_roots_setup_keeps() -> None:
    """``testing.capture`` wraps its processor as ``setup()`` wraps the batch processor,
    so a test sees the dropped-then-kept root with its reason."""
    with capture(**DROP_ALL, traces_keep_errors=True) as captured:
        with pytest.raises(RuntimeError):
            _fail_in_a_span()
        assert dict(captured.span("failing").attributes or {})[PROMOTED_REASON] == "error"


def test_kept_roots_reach_the_exporter_and_are_counted() -> None:
    """Through ``setup()``'s own batch processor (console exporter here), the failed root
    is promoted once and counted in ``unified_obs.trace.sampling.promoted``."""
    tel = obs.setup(
        environ={}, service_name="s", traces_exporter="console", **DROP_ALL, traces_keep_errors=True
    )
    with pytest.raises(RuntimeError):
        _fail_in_a_span()
    tel.force_flush(5.0)
    assert obs.metrics.value("unified_obs.trace.sampling.promoted", reason="error") == 1
