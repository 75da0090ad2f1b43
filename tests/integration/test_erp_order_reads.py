"""Reads by order number (the products and stock on an order's lines) answer what the per-item reads do."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from demo.erp.seed import seed
from demo.world import World
from sources.erp import ErpSource
from sources.sql import SqlTransport


async def test_order_reads_match_item_reads_with_repeated_and_unknown_items(world: World, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'erp.db'}"
    await seed(url, world)
    transport = SqlTransport("erp", url, timeout_s=5)
    erp = ErpSource(transport)
    order = next(o for o in world.orders() if len(o.lines) >= 2)
    lines = order.lines
    async with transport.engine.begin() as conn:  # the first item again on a new line, and an unknown item
        await conn.execute(text('INSERT INTO "ORDDTL" ("ODORNO", "ODLINE", "ODITNO", "ODQORD", "ODUPRC") '
                                "VALUES (:o, 901, :i, 1, 100), (:o, 902, :u, 1, 100)"),
                           {"o": order.number, "i": lines[0].item.ljust(15), "u": "NO-SUCH-ITEM".ljust(15)})
    try:
        skus = sorted({line.item for line in lines})
        items = await erp.items_of_orders([order.number, -1])
        stock = await erp.stock_of_orders([order.number, -1])
        assert items[-1] == {} and stock[-1] == {}  # an order number that does not exist: nothing, not an error
        assert items[order.number] == await erp.items(skus)
        per_item = await erp.stock_of_items(skus)
        assert stock[order.number] == {sku: levels for sku, levels in per_item.items() if levels}
        assert "NO-SUCH-ITEM" not in items[order.number] and "NO-SUCH-ITEM" not in stock[order.number]
    finally:
        await transport.aclose()
