"""The docs/decorators.md examples (``tests/typing/usage.py``, type-checked by mypy) run as
documented."""

from __future__ import annotations

import asyncio

from tests.typing import usage
from unified_obs.testing import capture


def test_readme_examples_run_and_make_their_spans() -> None:
    """Every example returns what its annotation says and makes the documented spans."""
    with capture() as cap:
        count, paid, rows, seen, reserved, inventory, sku, html = asyncio.run(usage.main())
        assert (count, paid, rows, seen, reserved, sku, html) == (
            1,
            True,
            ["orders.csv:0", "orders.csv:1", "orders.csv:2"],
            [0, 1],
            True,
            "SKU-2",
            "<p>",
        )
        assert isinstance(inventory, usage.Inventory)
        assert sorted(span.name for span in cap.spans) == [
            "Inventory.default",
            "Inventory.normalise",
            "Inventory.reserve",
            "async-block",
            "cache.load",
            "create_order",
            "payments.charge",
            "read_rows",
            "ticks",
        ]
        assert cap.span("payments.charge").attributes["arg.user_id"] == 7  # type: ignore[index]
        assert cap.metric("jobs.processed", outcome="ok", error_type="") == 1.0
