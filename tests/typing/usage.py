"""The README's decorator examples, type-checked by mypy so documented signatures stay true.

Importing this module runs nothing but the decorations; pytest does not collect it
(no ``test_`` prefix).  ``tests/test_decorators_usage.py`` imports and calls it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from opentelemetry.trace import Span, SpanKind

import unified_obs as obs


@obs.traced
def create_order(user_id: int, items: list[str]) -> int:
    """Sync function: span ``create_order`` + ``function.calls`` + ``function.duration``."""
    return len(items)


@obs.traced(name="payments.charge", record_args=("user_id",), kind=SpanKind.CLIENT)
async def charge(user_id: int, card_token: str) -> bool:
    """Coroutine with a chosen span name, a recorded argument and a span kind."""
    await asyncio.sleep(0)
    return True


@obs.traced
def read_rows(path: str) -> Iterator[str]:
    """Generator: one span for the whole iteration."""
    yield from (f"{path}:{n}" for n in range(3))


@obs.traced(attributes={"stream": "ticks"})
async def ticks(count: int) -> AsyncIterator[int]:
    """Async generator: one span until exhausted, closed or cancelled."""
    for n in range(count):
        await asyncio.sleep(0)
        yield n


class Inventory:
    """Methods of every kind."""

    @obs.traced
    def reserve(self, sku: str, quantity: int = 1) -> bool:
        """Instance method: span ``Inventory.reserve``."""
        return quantity > 0

    @obs.traced
    @classmethod
    def default(cls) -> Inventory:
        """Classmethod."""
        return cls()

    @obs.traced
    @staticmethod
    def normalise(sku: str) -> str:
        """Staticmethod."""
        return sku.upper()


@obs.timed
def render(template: str) -> str:
    """Metrics only: ``function.duration``."""
    return template


@obs.counted("jobs.processed")
def process(job_id: int) -> None:
    """Metrics only: ``function.calls`` under a chosen name."""


def rebuild_cache(keys: list[str]) -> int:
    """Blocks: ``timed``/``counted`` as context managers, ``span`` for an ad-hoc span."""
    with obs.timed("cache.rebuild"):
        size = len(keys)
    with obs.counted("cache.writes"):
        pass
    with obs.span("cache.load", size=size) as span:
        span.set_attribute("loaded", True)
    return size


async def main() -> tuple[int, bool, list[str], list[int], bool, Inventory, str, str]:
    """Calls every example; the types below are what mypy infers through the decorators."""
    count: int = create_order(7, ["book"])
    paid: bool = await charge(7, "tok_x")
    rows: list[str] = list(read_rows("orders.csv"))
    seen: list[int] = [n async for n in ticks(2)]
    reserved: bool = Inventory().reserve("sku-1")
    inventory: Inventory = Inventory.default()
    sku: str = Inventory.normalise("sku-2")
    html: str = render("<p>")
    process(1)
    rebuild_cache(["a"])
    async with obs.span("async-block") as block:
        current: Span = block
        current.set_attribute("done", True)
    return count, paid, rows, seen, reserved, inventory, sku, html
