"""The installed OpenTelemetry SDK release, for tests whose expectations differ by release
(`./run compat` runs them at the floor and at the newest)."""

from __future__ import annotations

import opentelemetry.sdk.version

SDK: tuple[int, int] = tuple(  # type: ignore[assignment]
    int(part) for part in opentelemetry.sdk.version.__version__.split(".")[:2]
)
"""(major, minor), e.g. (1, 45)."""
