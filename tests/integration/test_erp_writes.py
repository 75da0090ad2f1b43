"""The ERP writer: business rules, row locks under concurrency, exactly once per key, on all three databases.

Every test runs on SQLite, PostgreSQL and MariaDB, each a freshly seeded small world. The servers' variants
skip locally when a server is absent and fail under CI=true (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.sql.schema import Table

from demo.erp.schema import CUSMAS, ITMBAL, ITMMAS, NUMCTL, ORDHDR
from demo.erp.seed import ORDER_RANGE, is_seeded, seed
from demo.world import World
from sources.base import CallLog, recording
from sources.erp import ErpSource
from sources.erp_writes import FAULT_VARIABLE, GWSTEP, ErpOrderWrite, ErpWriter
from sources.errors import RuleViolation, SourceUnavailable
from sources.sql import SqlTransport, make_write_engine
from sources.values import Money, OrderStatus

TODAY = date(2026, 12, 1)
CUSTOMERS = 50  # active customers with ample credit, one order each in the concurrency test


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def erp_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'erp.db'}"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def writer(erp_url: str, world: World) -> AsyncIterator[ErpWriter]:
    await seed(erp_url, world)
    erp = ErpWriter("erp", erp_url, timeout_s=20, pool_size=5, currency="USD", today=lambda: TODAY)
    await erp.install()
    try:
        yield erp
    finally:
        await erp.aclose()


# --- arranging and reading the ERP directly ----------------------------------------------------------

async def _rows(erp: ErpWriter, table: Table, *where: Any) -> list[dict[str, Any]]:
    async with erp.engine.begin() as conn:
        return [dict(r) for r in (await conn.execute(select(table).where(*where))).mappings()]


async def _set(erp: ErpWriter, table: Table, where: list[Any], **values: Any) -> None:
    async with erp.engine.begin() as conn:
        await conn.execute(update(table).where(*where).values(**values))


async def _balance(erp: ErpWriter, item: str, warehouse: str) -> tuple[int, int] | None:
    rows = await _rows(erp, ITMBAL, ITMBAL.c.IBITNO == item.ljust(15), ITMBAL.c.IBWHSE == warehouse)
    return (int(rows[0]["IBQOH"]), int(rows[0]["IBQAL"])) if rows else None


async def _set_balance(erp: ErpWriter, item: str, warehouse: str, on_hand: int, allocated: int) -> None:
    await _set(erp, ITMBAL, [ITMBAL.c.IBITNO == item.ljust(15), ITMBAL.c.IBWHSE == warehouse],
               IBQOH=on_hand, IBQAL=allocated)


async def _put_balance(erp: ErpWriter, item: str, warehouse: str, on_hand: int, allocated: int) -> None:
    """A balance row with these quantities, whether or not the item had one in the warehouse."""
    async with erp.engine.begin() as conn:
        await conn.execute(delete(ITMBAL).where(ITMBAL.c.IBITNO == item.ljust(15), ITMBAL.c.IBWHSE == warehouse))
        await conn.execute(insert(ITMBAL).values(IBITNO=item.ljust(15), IBWHSE=warehouse, IBQOH=on_hand,
                                                 IBQAL=allocated))


async def _next_number(erp: ErpWriter) -> int | None:
    rows = await _rows(erp, NUMCTL, NUMCTL.c.NCKEY == ORDER_RANGE)
    return int(rows[0]["NCNEXT"]) if rows else None


async def _order_count(erp: ErpWriter) -> int:
    async with erp.engine.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(ORDHDR))).scalar_one())


async def _open_total(erp: ErpWriter, customer: str) -> int:
    async with erp.engine.begin() as conn:
        return int((await conn.execute(select(func.coalesce(func.sum(ORDHDR.c.OHTOTL), 0)).where(
            ORDHDR.c.OHCUNO == customer.rjust(8), ORDHDR.c.OHSTAT.in_(("O", "A"))))).scalar_one())


async def _give_credit(erp: ErpWriter, customers: list[str]) -> None:
    await _set(erp, CUSMAS, [CUSMAS.c.CMCUNO.in_([c.rjust(8) for c in customers])],
               CMCRLM=1_000_000_000, CMBALD=0)


def _stocked(world: World) -> tuple[str, str, str]:
    """An item with a balance row in one warehouse and none in another: (item, stocked, unstocked)."""
    warehouses = [w[0] for w in world.warehouses]
    by_item: dict[str, set[str]] = {}
    for s in world.stock:
        by_item.setdefault(s.item, set()).add(s.warehouse)
    item = next(i for i, whs in sorted(by_item.items()) if len(whs) < len(warehouses))
    stocked = sorted(by_item[item])[0]
    return item, stocked, next(w for w in warehouses if w not in by_item[item])


def _active(world: World, n: int) -> list[str]:
    """Active customers billed in the item master's currency (the writer's, USD): those orders are priced."""
    return [c.erp_number for c in world.customers if c.status == "A" and c.currency == "USD"][:n]


async def _refused(call: Any) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        await call
    return caught.value


# --- placing orders -----------------------------------------------------------------------------------

async def test_concurrent_orders_take_exactly_the_available_stock(writer: ErpWriter, world: World) -> None:
    item, wh, _ = _stocked(world)
    customers = _active(world, CUSTOMERS)
    await _give_credit(writer, customers)
    await _set_balance(writer, item, wh, 25, 15)  # 10 available
    first = await _next_number(writer)
    assert first is not None

    outcomes = await asyncio.gather(*(
        writer.place_order(f"race-{i}", customer=c, warehouse=wh, lines=[(item, 1)])
        for i, c in enumerate(customers)), return_exceptions=True)

    placed = [o for o in outcomes if isinstance(o, ErpOrderWrite)]
    refused = [o for o in outcomes if isinstance(o, RuleViolation)]
    assert len(placed) == 10 and len(refused) == 40, [o for o in outcomes if isinstance(o, Exception)][:3]
    assert {r.code for r in refused} == {"INSUFFICIENT_STOCK"}
    assert {r.field for r in refused} == {"input.lines.0.quantity"}
    assert await _balance(writer, item, wh) == (25, 25)
    assert sorted(p.order.number for p in placed) == list(range(first, first + 10))
    assert await _next_number(writer) == first + 10
    # Each write saw the allocations committed before it: their stock after it climbs by one each time.
    assert sorted(p.stock[0].allocated for p in placed) == list(range(16, 26))


async def test_an_order_is_priced_allocated_and_read_back_as_written(writer: ErpWriter, world: World) -> None:
    item, wh, _ = _stocked(world)
    other = next(s for s in world.stock if s.warehouse == wh and s.item != item)
    customer = _active(world, 1)[0]
    await _give_credit(writer, [customer])
    await _set_balance(writer, item, wh, 100, 0)
    await _set_balance(writer, other.item, wh, 100, 40)
    prices = {i.number: i.list_price_cents for i in world.items}
    currency = next(c.currency for c in world.customers if c.erp_number == customer)

    with recording(CallLog()) as log:
        result = await writer.place_order("price-1", customer=customer, warehouse=wh,
                                          lines=[(item, 3), (other.item, 2)])

    total = 3 * prices[item] + 2 * prices[other.item]
    assert result.order.status is OrderStatus.ALLOCATED and result.order.placed == TODAY
    assert result.order.customer == customer and result.order.warehouse == wh
    assert result.order.total == Money.from_cents(total, currency)
    assert [(line.line, line.item, line.quantity, line.unit_price) for line in result.lines] == [
        (1, item, 3, Money.from_cents(prices[item], currency)),
        (2, other.item, 2, Money.from_cents(prices[other.item], currency))]
    assert {(s.item, s.on_hand, s.allocated) for s in result.stock} == {(item, 100, 3), (other.item, 100, 42)}
    assert [(c.source, c.operation, c.status) for c in log.calls] == [("erp", "place_order", "ok")]
    reads = ErpSource(SqlTransport("erp", writer.engine.url.render_as_string(hide_password=False), timeout_s=5))
    try:
        assert (await reads.orders([result.order.number]))[result.order.number] == result.order
        assert (await reads.lines_of_orders([result.order.number]))[result.order.number] == result.lines
    finally:
        await reads.aclose()


async def test_the_same_key_places_one_order_even_concurrently(writer: ErpWriter, world: World) -> None:
    item, wh, _ = _stocked(world)
    customer = _active(world, 1)[0]
    await _give_credit(writer, [customer])
    await _set_balance(writer, item, wh, 10, 0)
    before = await _order_count(writer)

    results = await asyncio.gather(*(writer.place_order("same-key", customer=customer, warehouse=wh,
                                                        lines=[(item, 2)]) for _ in range(6)))
    again = await writer.place_order("same-key", customer=customer, warehouse=wh, lines=[(item, 2)])

    assert all(r == results[0] for r in [*results, again])
    assert await writer.recorded("same-key", "place_order") == results[0]
    assert await writer.recorded("other-key", "place_order") is None
    assert await _order_count(writer) == before + 1
    assert await _balance(writer, item, wh) == (10, 2)
    assert len(await _rows(writer, GWSTEP, GWSTEP.c.GSKEY == "same-key")) == 1


async def test_an_order_must_fit_the_customers_credit_after_its_open_orders(writer: ErpWriter, world: World) -> None:
    item, wh, _ = _stocked(world)
    await _set_balance(writer, item, wh, 100, 0)
    price = next(i.list_price_cents for i in world.items if i.number == item)
    customer = _active(world, 1)[0]
    balance = 12_345
    # Room for exactly one unit, once the open and allocated orders the customer already has are counted.
    await _set(writer, CUSMAS, [CUSMAS.c.CMCUNO == customer.rjust(8)],
               CMCRLM=balance + await _open_total(writer, customer) + price, CMBALD=balance)

    await writer.place_order("credit-1", customer=customer, warehouse=wh, lines=[(item, 1)])
    number = await _next_number(writer)
    refused = await _refused(writer.place_order("credit-2", customer=customer, warehouse=wh, lines=[(item, 1)]))

    assert (refused.code, refused.field) == ("CREDIT_LIMIT_EXCEEDED", "input.lines")
    assert "available credit 0.00" in refused.message
    assert await _balance(writer, item, wh) == (100, 1) and await _next_number(writer) == number
    assert await _rows(writer, GWSTEP, GWSTEP.c.GSKEY == "credit-2") == []  # a refusal is not recorded


async def test_concurrent_orders_of_one_customer_stay_within_its_credit(writer: ErpWriter, world: World) -> None:
    wh = world.warehouses[0][0]
    items = sorted({s.item for s in world.stock if s.warehouse == wh})[:10]  # one each: no shared stock row
    customer = _active(world, 1)[0]
    for item in items:
        await _set(writer, ITMMAS, [ITMMAS.c.IMITNO == item.ljust(15)], IMLPRC=1_000)
        await _set_balance(writer, item, wh, 5, 0)
    await _set(writer, CUSMAS, [CUSMAS.c.CMCUNO == customer.rjust(8)],
               CMCRLM=await _open_total(writer, customer) + 3_000, CMBALD=0)  # room for three orders

    outcomes = await asyncio.gather(*(
        writer.place_order(f"credit-race-{i}", customer=customer, warehouse=wh, lines=[(item, 1)])
        for i, item in enumerate(items)), return_exceptions=True)

    refused = [o for o in outcomes if isinstance(o, RuleViolation)]
    assert sum(isinstance(o, ErpOrderWrite) for o in outcomes) == 3, outcomes
    assert len(refused) == 7 and {r.code for r in refused} == {"CREDIT_LIMIT_EXCEEDED"}


async def test_orders_are_refused_for_unknown_or_inactive_customers_items_and_warehouses(
        writer: ErpWriter, world: World) -> None:
    item, wh, unstocked = _stocked(world)
    active = _active(world, 1)[0]
    inactive = next(c.erp_number for c in world.customers if c.status == "I")
    await _give_credit(writer, [active])
    await _set_balance(writer, item, wh, 10, 7)
    before = await _order_count(writer), await _balance(writer, item, wh), await _next_number(writer)

    cases = [
        ({"customer": "999999"}, "UNKNOWN_CUSTOMER", "input.customer"),
        ({"customer": inactive}, "CUSTOMER_INACTIVE", "input.customer"),
        ({"warehouse": "XXX"}, "UNKNOWN_WAREHOUSE", "input.warehouse"),
        ({"warehouse": wh.lower()}, "UNKNOWN_WAREHOUSE", "input.warehouse"),
        ({"lines": [(item, 1), ("NOPE00001", 1)]}, "UNKNOWN_SKU", "input.lines.1.sku"),
        ({"lines": [(item, 1), (item.lower(), 1)]}, "UNKNOWN_SKU", "input.lines.1.sku"),
        ({"lines": [(item, 0)]}, "INVALID_QUANTITY", "input.lines.0.quantity"),
        ({"lines": [(item, 1), (item, 1)]}, "DUPLICATE_SKU", "input.lines.1.sku"),
        ({"lines": []}, "NO_LINES", "input.lines"),
        ({"lines": [(item, 4)]}, "INSUFFICIENT_STOCK", "input.lines.0.quantity"),
        ({"warehouse": unstocked, "lines": [(item, 1)]}, "INSUFFICIENT_STOCK", "input.lines.0.quantity"),
    ]
    for i, (change, code, field) in enumerate(cases):
        args: dict[str, Any] = {"customer": active, "warehouse": wh, "lines": [(item, 1)], **change}
        refused = await _refused(writer.place_order(f"refused-{i}", **args))
        assert (refused.code, refused.field) == (code, field), (change, refused)
    stock = await _refused(writer.place_order("refused-x", customer=active, warehouse=wh, lines=[(item, 4)]))
    assert stock.message.startswith(f"only 3 of {item} available in {wh}")
    assert (await _order_count(writer), await _balance(writer, item, wh), await _next_number(writer)) == before


# --- cancelling and shipping --------------------------------------------------------------------------

async def _placed(writer: ErpWriter, world: World, quantity: int = 4) -> tuple[ErpOrderWrite, str, str]:
    item, wh, _ = _stocked(world)
    customer = _active(world, 1)[0]
    await _give_credit(writer, [customer])
    await _set_balance(writer, item, wh, 50, 10)
    placed = await writer.place_order("place", customer=customer, warehouse=wh, lines=[(item, quantity)])
    return placed, item, wh


async def test_cancelling_releases_the_allocation_exactly_once(writer: ErpWriter, world: World) -> None:
    placed, item, wh = await _placed(writer, world)
    number = placed.order.number
    assert await _balance(writer, item, wh) == (50, 14)

    results = await asyncio.gather(*(writer.cancel_order("cancel", number=number) for _ in range(3)))
    again = await writer.cancel_order("cancel", number=number)

    assert all(r == results[0] for r in [*results, again])
    assert results[0].order.status is OrderStatus.CANCELLED and results[0].lines == placed.lines
    assert [(s.item, s.on_hand, s.allocated) for s in results[0].stock] == [(item, 50, 10)]
    assert await _balance(writer, item, wh) == (50, 10)
    refused = await _refused(writer.cancel_order("cancel-again", number=number))
    assert (refused.code, refused.field) == ("ORDER_NOT_CANCELLABLE", "number") and "cancelled" in refused.message
    missing = await _refused(writer.cancel_order("cancel-missing", number=1))
    assert (missing.code, missing.field) == ("ORDER_NOT_FOUND", "number")


async def test_cancelling_releases_only_what_was_allocated_and_never_below_zero(writer: ErpWriter,
                                                                                 world: World) -> None:
    open_, allocated = (next(o for o in world.orders() if o.status == status) for status in "OA")
    shipped = next(o for o in world.orders() if o.status == "S")
    for line in open_.lines:
        await _put_balance(writer, line.item, open_.warehouse, 50, 20)
    for line in allocated.lines:
        await _put_balance(writer, line.item, allocated.warehouse, 50, 0)  # less than the order allocated

    kept = await writer.cancel_order("cancel-open", number=open_.number)
    released = await writer.cancel_order("cancel-allocated", number=allocated.number)

    assert kept.order.status is OrderStatus.CANCELLED and kept.stock == ()
    assert {await _balance(writer, line.item, open_.warehouse) for line in open_.lines} == {(50, 20)}
    assert sorted((s.item, s.on_hand, s.allocated) for s in released.stock) == sorted(
        (line.item, 50, 0) for line in allocated.lines)
    assert {await _balance(writer, line.item, allocated.warehouse) for line in allocated.lines} == {(50, 0)}
    refused = await _refused(writer.cancel_order("cancel-shipped", number=shipped.number))
    assert refused.code == "ORDER_NOT_CANCELLABLE" and "shipped" in refused.message
    assert (await _rows(writer, ORDHDR, ORDHDR.c.OHORNO == shipped.number))[0]["OHSTAT"] == "S"


async def test_shipping_takes_the_stock_and_its_allocation(writer: ErpWriter, world: World) -> None:
    placed, item, wh = await _placed(writer, world)

    shipped = await writer.mark_shipped("ship", number=placed.order.number)

    assert shipped.order.status is OrderStatus.SHIPPED
    assert [(s.item, s.on_hand, s.allocated) for s in shipped.stock] == [(item, 46, 10)]
    assert await _balance(writer, item, wh) == (46, 10)
    assert await writer.mark_shipped("ship", number=placed.order.number) == shipped
    assert await _balance(writer, item, wh) == (46, 10)
    refused = await _refused(writer.mark_shipped("ship-again", number=placed.order.number))
    assert refused.code == "ORDER_NOT_SHIPPABLE" and "shipped" in refused.message


async def test_shipping_an_open_order_takes_only_stock_on_hand_and_never_below_zero(
        writer: ErpWriter, world: World) -> None:
    order = next(o for o in world.orders() if o.status == "O" and len(o.lines) == 1)
    line = order.lines[0]
    await _set_balance(writer, line.item, order.warehouse, line.quantity - 1, 0)

    refused = await _refused(writer.mark_shipped("ship-short", number=order.number))
    assert refused.code == "INSUFFICIENT_STOCK"
    assert (await _rows(writer, ORDHDR, ORDHDR.c.OHORNO == order.number))[0]["OHSTAT"] == "O"

    await _set_balance(writer, line.item, order.warehouse, line.quantity + 5, 3)
    shipped = await writer.mark_shipped("ship-open", number=order.number)
    assert [(s.on_hand, s.allocated) for s in shipped.stock] == [(5, 3)]
    assert await _balance(writer, line.item, order.warehouse) == (5, 3)


# --- receiving stock ----------------------------------------------------------------------------------

async def test_receiving_stock_adds_to_on_hand_and_creates_missing_balances(writer: ErpWriter, world: World) -> None:
    item, wh, unstocked = _stocked(world)
    other = next(s for s in world.stock if s.warehouse == unstocked and s.item != item)
    await _set_balance(writer, other.item, unstocked, 7, 2)

    received = await writer.receive_stock("receive", warehouse=unstocked,
                                          lines=[(item, 5), (other.item, 3), (item, 1)])
    again = await writer.receive_stock("receive", warehouse=unstocked, lines=[(item, 5), (other.item, 3), (item, 1)])

    assert again == received == await writer.recorded("receive", "receive_stock")
    assert [(s.item, s.warehouse, s.on_hand, s.allocated) for s in received] == [
        (item, unstocked, 6, 0), (other.item, unstocked, 10, 2)]
    assert await _balance(writer, item, unstocked) == (6, 0)
    assert await _balance(writer, other.item, unstocked) == (10, 2)
    for lines, warehouse, code, field in [([(item, 1)], "XXX", "UNKNOWN_WAREHOUSE", "input.warehouse"),
                                          ([(item, 1), ("NOPE00001", 2)], wh, "UNKNOWN_SKU", "input.lines.1.sku"),
                                          ([(item, -1)], wh, "INVALID_QUANTITY", "input.lines.0.quantity")]:
        refused = await _refused(writer.receive_stock("receive-bad", warehouse=warehouse, lines=lines))
        assert (refused.code, refused.field) == (code, field)
    assert await _balance(writer, item, unstocked) == (6, 0)


# --- faults, old databases, installing -----------------------------------------------------------------

async def test_the_fault_variable_fails_its_operation_without_changing_anything(
        writer: ErpWriter, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    placed, _, _ = await _placed(writer, world)
    monkeypatch.setenv(FAULT_VARIABLE, "mark_shipped")

    with recording(CallLog()) as log:
        with pytest.raises(SourceUnavailable) as failed:
            await writer.mark_shipped("ship-fault", number=placed.order.number)
        cancelled = await writer.cancel_order("cancel-ok", number=placed.order.number)

    assert failed.value.source == "erp"
    assert [(c.operation, c.status) for c in log.calls] == [("mark_shipped", "SOURCE_UNAVAILABLE"),
                                                             ("cancel_order", "ok")]
    assert cancelled.order.status is OrderStatus.CANCELLED
    assert await writer.recorded("ship-fault", "mark_shipped") is None
    monkeypatch.delenv(FAULT_VARIABLE)
    refused = await _refused(writer.mark_shipped("ship-fault", number=placed.order.number))
    assert refused.code == "ORDER_NOT_SHIPPABLE"


async def test_concurrent_orders_take_consecutive_numbers_and_an_old_erp_starts_its_range_after_the_highest(
        writer: ErpWriter, world: World) -> None:
    wh = world.warehouses[0][0]
    items = sorted({s.item for s in world.stock if s.warehouse == wh})[:10]  # no shared stock row: no shared lock
    customers = _active(world, 10)
    await _give_credit(writer, customers)
    for item in items:
        await _set_balance(writer, item, wh, 100, 0)
    async with writer.engine.begin() as conn:
        await conn.run_sync(NUMCTL.drop)
        highest = int((await conn.execute(select(func.max(ORDHDR.c.OHORNO)))).scalar_one())
    await writer.install()  # creates the table the ERP lacks; its row comes with the first order
    assert await _next_number(writer) is None

    async def place(round_: str) -> list[int]:
        placed = await asyncio.gather(*(
            writer.place_order(f"{round_}-{i}", customer=c, warehouse=wh, lines=[(item, 1)])
            for i, (c, item) in enumerate(zip(customers, items, strict=True))))
        return sorted(p.order.number for p in placed)

    assert await place("first") == list(range(highest + 1, highest + 11))  # initialising the range races too
    assert await place("second") == list(range(highest + 11, highest + 21))
    assert await _next_number(writer) == highest + 21


async def test_install_is_idempotent_with_several_processes_at_once(writer: ErpWriter, erp_url: str) -> None:
    async with writer.engine.begin() as conn:
        await conn.run_sync(GWSTEP.drop)
    assert not (await writer.health()).ok
    others = [ErpWriter("erp", erp_url, timeout_s=20, pool_size=1, currency="USD") for _ in range(4)]
    try:
        await asyncio.gather(*(w.install() for w in others))
        await writer.install()
    finally:
        for w in others:
            await w.aclose()
    assert (await writer.health()).ok


async def test_a_key_is_at_most_64_characters(tmp_path: Path) -> None:
    erp = ErpWriter("erp", f"sqlite+aiosqlite:///{tmp_path / 'erp.db'}", timeout_s=5, pool_size=1, currency="USD")
    try:
        for key in ("", "k" * 65):
            with pytest.raises(ValueError, match="64"):
                await erp.cancel_order(key, number=1)
    finally:
        await erp.aclose()


async def test_a_sqlite_write_transaction_holds_the_write_lock_from_its_first_read(tmp_path: Path) -> None:
    """No deferred BEGIN on SQLite: a write that read stock is never refused (or beaten) when it then writes."""
    path = tmp_path / "erp.db"
    engine = make_write_engine(f"sqlite+aiosqlite:///{path}", pool_size=1)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again once the transaction ended
        other.execute("ROLLBACK")
    finally:
        other.close()
        await engine.dispose()


async def test_a_demo_erp_without_a_number_range_is_seeded_again(world: World, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'erp.db'}"
    await seed(url, world)
    assert await is_seeded(url, world)
    erp = ErpWriter("erp", url, timeout_s=5, pool_size=1, currency="USD")
    try:
        assert await _next_number(erp) == max(o.number for o in world.orders()) + 1
        async with erp.engine.begin() as conn:
            await conn.run_sync(NUMCTL.drop)
    finally:
        await erp.aclose()
    assert not await is_seeded(url, world)

