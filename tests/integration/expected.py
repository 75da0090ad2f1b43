"""What the seeded sample systems hold, computed straight from the world: the oracle for GraphQL tests."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from demo.world import Customer, Order, StockBalance, World

ORDER_STATUS = {"O": "OPEN", "A": "ALLOCATED", "S": "SHIPPED", "I": "INVOICED", "C": "CANCELLED"}


def cents(value: int) -> Decimal:
    return Decimal(value) / 100


def orders_of(world: World, number: str) -> list[Order]:
    """A customer's orders, newest first, as the ERP sorts them."""
    return sorted((o for o in world.orders() if o.customer == number), key=lambda o: (o.placed, o.number),
                  reverse=True)


def stock_by_item(world: World) -> dict[str, list[StockBalance]]:
    out: dict[str, list[StockBalance]] = defaultdict(list)
    for s in world.stock:
        out[s.item].append(s)
    return {k: sorted(v, key=lambda s: s.warehouse) for k, v in out.items()}


def linked_customer(world: World, *, min_orders: int, max_orders: int | None = None,
                    min_interactions: int = 0) -> Customer:
    """A customer whose CRM record carries its exact ERP number, with a given number of orders."""
    counts: dict[str, int] = defaultdict(int)
    for o in world.orders():
        counts[o.customer] += 1
    for c in world.customers:
        n = counts[c.erp_number]
        if (c.crm_erp_number == c.erp_number and n >= min_orders and (max_orders is None or n <= max_orders)
                and len(world.interactions[c.crm_id]) >= min_interactions):
            return c
    raise LookupError("no such customer in this world")
