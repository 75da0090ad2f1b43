"""Writes to the legacy ERP for business operations: place, cancel and ship orders, receive stock.

Each write is one transaction that applies at most once per idempotency key. Saga steps call these: a
step re-run after a crash between the ERP's commit and the saga log's own finds its key in the ERP's
ledger (GWSTEP, written in the same transaction as the change) and gets the stored result back, with
nothing applied twice.

A write never reads a row it is about to change without locking it first. On PostgreSQL and MariaDB the
locks are row locks (SELECT ... FOR UPDATE), always taken in one order: the customer (CUSMAS), then the
order (ORDHDR), then stock balances (ITMBAL) sorted by item and warehouse, then the number range (NUMCTL),
so two writes never wait for each other in a cycle. Before all of them a write inserts its key's ledger
row: only a write with the same key can wait for that, and it waits holding nothing. On SQLite a
transaction takes the database's write lock at BEGIN (sources.sql.make_write_engine). A transaction that
still loses a deadlock, or finds the database busy, was rolled back whole, so it is run again, a few
times at most.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, overload

from sqlalchemy import CHAR, BigInteger, Column, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sources.base import Health, SourceCall, ms_since, record_call
from sources.erp import (
    CUSMAS,
    ITMBAL,
    ITMMAS,
    LINE_MAP,
    ORDDTL,
    ORDER_MAP,
    ORDER_STATUS,
    ORDHDR,
    STOCK_MAP,
    WHSMAS,
    ErpOrder,
    ErpOrderLine,
    ErpStock,
    customer_key,
    item_key,
)
from sources.errors import RuleViolation, SourceError, SourceTimeout, SourceUnavailable
from sources.mapping import to_cyymmdd
from sources.sql import make_write_engine
from sources.values import Money

#: Test-only fault point: when this environment variable names an operation (`mark_shipped`), that
#: operation fails with SOURCE_UNAVAILABLE before touching the database.
FAULT_VARIABLE = "GATEWAY_FAULT_ERP_WRITE"
MAX_KEY_LENGTH = 64
#: Times a transaction is run again after a deadlock, a serialization failure or a busy database.
RETRIES = 3
RETRY_BACKOFF_S = 0.02  # the n-th retry waits a random time up to this times 2**n
OPEN_STATUSES = ("O", "A")  # open and allocated: not shipped, invoiced or cancelled
#: NUMCTL's range of order numbers (CHAR(8), left-aligned as the ERP keys it).
ORDER_RANGE = "ORDHDR".ljust(8)

# --- tables the writer may create -------------------------------------------------------------------

ledger_metadata = MetaData()

#: The gateway's own ledger in the ERP database: one row per write applied, keyed by its idempotency key,
#: with its result as JSON (the legacy rows it left), so that a repeated write returns the same answer.
GWSTEP = Table(
    "GWSTEP", ledger_metadata,
    Column("GSKEY", String(MAX_KEY_LENGTH), primary_key=True),
    Column("GSOPER", String(40), nullable=False),
    Column("GSRSLT", Text, nullable=False),
    Column("GSTIME", BigInteger, nullable=False),  # epoch ms: past a 32-bit integer
)

#: The ERP's number ranges, as demo/erp/schema.py declares them (sources/ does not import demo/). Created by
#: `install` only where an ERP has none: a demo database seeded before the table existed.
NUMCTL = Table(
    "NUMCTL", ledger_metadata,
    Column("NCKEY", CHAR(8), primary_key=True),
    Column("NCNEXT", Integer, nullable=False),
)

Lines = Sequence[tuple[str, int]]
OrderOperation = Literal["place_order", "cancel_order", "mark_shipped"]
Raw = dict[str, Any]


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErpOrderWrite:
    """An order as a write left it, with the stock balances the write changed, as they are after it: the
    caller can publish the stock changes without reading them again (empty when no balance changed)."""

    order: ErpOrder
    lines: tuple[ErpOrderLine, ...]
    stock: tuple[ErpStock, ...]


class _Conflict(Exception):
    """A concurrent transaction got there first (the same new row inserted); this one rolled back."""


class _KeyApplied(Exception):
    """The idempotency key is already in the ledger, committed by another transaction."""


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")


def _retryable(exc: DBAPIError) -> bool:
    """A deadlock, serialization failure, lock wait timeout or busy SQLite database: the transaction was
    rolled back (or is, as we leave it), so running it again is safe."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):  # PostgreSQL: serialization failure, deadlock
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1205, 1213):  # MariaDB: lock wait timeout, deadlock
        return True
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int) and sqlite_code & 0xFF in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return True
    return "database is locked" in str(orig)


def _sku_field(index: int, part: str) -> str:
    return f"input.lines.{index}.{part}"


def _check_quantities(lines: Lines) -> None:
    if not lines:
        raise RuleViolation("NO_LINES", "at least one line is needed", "input.lines")
    for i, (_, quantity) in enumerate(lines):
        if quantity < 1:
            raise RuleViolation("INVALID_QUANTITY", f"quantity must be at least 1, got {quantity}",
                                _sku_field(i, "quantity"))


def _stock_row(row: Mapping[str, Any], on_hand: int, allocated: int) -> Raw:
    return {"IBITNO": str(row["IBITNO"]), "IBWHSE": str(row["IBWHSE"]), "IBQOH": on_hand, "IBQAL": allocated}


class ErpWriter:
    """Applies business writes to the ERP database, each in one transaction, once per idempotency key.

    Every method takes `key`, the idempotency key of the step (1 to 64 characters): a key already in the
    ledger returns the result stored under it and changes nothing. A business rule's refusal raises
    `RuleViolation` and changes nothing; it is not stored, so a refused step asked again is judged again.
    Database failures raise SOURCE_UNAVAILABLE; a transaction longer than `timeout_s` (waiting for a
    connection and for locks included) is rolled back and raises SOURCE_TIMEOUT. A write that timed out
    may have committed just before; running it again with its key is always safe.

    Every write records one upstream call named after its method (its attempts after conflicts included);
    a refusal's status is its rule code.

    Test-only fault point: when the environment variable GATEWAY_FAULT_ERP_WRITE names an operation
    (`mark_shipped`, say), that operation fails with SOURCE_UNAVAILABLE and changes nothing. It is read at
    each call, so a test can switch it on and off around one step of a saga.
    """

    def __init__(self, name: str, url: str, *, timeout_s: float, pool_size: int, currency: str,
                 today: Callable[[], date] = date.today, engine: AsyncEngine | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.currency = currency  # of orders whose customer has no currency on record
        self.today = today
        self.engine = engine or make_write_engine(url, pool_size=pool_size)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def install(self) -> None:
        """Create the ledger (and NUMCTL, where the ERP has none) unless present; safe to run from several
        processes at once: one that loses the race to create a table finds it there afterwards."""
        for attempt in range(RETRIES + 1):
            try:
                async with asyncio.timeout(self.timeout_s):
                    async with self.engine.begin() as conn:
                        await conn.run_sync(ledger_metadata.create_all, checkfirst=True)
                return
            except TimeoutError as exc:
                raise SourceTimeout(self.name, f"install exceeded {self.timeout_s}s") from exc
            except (SQLAlchemyError, OSError) as exc:
                if attempt == RETRIES:
                    raise SourceUnavailable(self.name, f"install failed: {exc}") from exc
                await asyncio.sleep(random.uniform(0, RETRY_BACKOFF_S * 2**attempt))

    async def health(self) -> Health:
        """Whether a write could run now: the database answers and the ledger is installed (on SQLite this
        waits for the write lock, as a write would)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.engine.connect() as conn:
                    await conn.execute(select(GWSTEP.c.GSKEY).where(GWSTEP.c.GSKEY == ""))
        except TimeoutError:
            return Health(self.name, False, SourceTimeout(self.name, "health").public_message)
        except (SQLAlchemyError, OSError):
            return Health(self.name, False, SourceUnavailable(self.name, "health").public_message)
        return Health(self.name, True)

    async def aclose(self) -> None:
        await self.engine.dispose()

    # --- operations ----------------------------------------------------------------------------------

    async def place_order(self, key: str, *, customer: str, warehouse: str, lines: Lines) -> ErpOrderWrite:
        """Place and allocate an order: lines priced at the item's list price, within the customer's credit
        and the warehouse's available stock.

        The same SKU on two lines is refused (DUPLICATE_SKU): an order line per item keeps each line's
        input path pointing at one ERP line.
        """
        _check_quantities(lines)
        seen: dict[str, int] = {}
        for i, (sku, _) in enumerate(lines):
            if item_key(sku) in seen:
                raise RuleViolation("DUPLICATE_SKU", f"{sku.strip()} is on line {seen[item_key(sku)] + 1} "
                                    "already; give each SKU once", _sku_field(i, "sku"))
            seen[item_key(sku)] = i

        async def work(conn: AsyncConnection) -> Raw:
            return await self._place_order(conn, customer, warehouse, lines)

        return self._order_result(await self._write("place_order", key, len(lines), work))

    async def cancel_order(self, key: str, *, number: int) -> ErpOrderWrite:
        """Cancel an open or allocated order, releasing what it had allocated."""
        async def work(conn: AsyncConnection) -> Raw:
            return await self._settle_order(conn, number, cancel=True)

        return self._order_result(await self._write("cancel_order", key, 1, work))

    async def mark_shipped(self, key: str, *, number: int) -> ErpOrderWrite:
        """Mark an open or allocated order shipped: its stock leaves the warehouse (and its allocation)."""
        async def work(conn: AsyncConnection) -> Raw:
            return await self._settle_order(conn, number, cancel=False)

        return self._order_result(await self._write("mark_shipped", key, 1, work))

    async def receive_stock(self, key: str, *, warehouse: str, lines: Lines) -> tuple[ErpStock, ...]:
        """Add received quantities to a warehouse's stock on hand; returns the balances after it, one per SKU
        in the order first given (the same SKU on several lines is received once, quantities added up)."""
        _check_quantities(lines)

        async def work(conn: AsyncConnection) -> Raw:
            return await self._receive_stock(conn, warehouse, lines)

        return self._stock_result(await self._write("receive_stock", key, len(lines), work))

    @overload
    async def recorded(self, key: str, operation: OrderOperation) -> ErpOrderWrite | None: ...

    @overload
    async def recorded(self, key: str, operation: Literal["receive_stock"]) -> tuple[ErpStock, ...] | None: ...

    async def recorded(self, key: str, operation: str) -> ErpOrderWrite | tuple[ErpStock, ...] | None:
        """The result a write of this operation committed under `key`, or None: finds out whether a step whose
        outcome is unknown was applied, without applying it. None may also mean that a write with the key is
        still running; running the write with its key is safe in either case."""
        _check_key(key)
        started = time.perf_counter()
        status = "ok"
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self._stored(operation, key)
        except TimeoutError as exc:
            status = SourceTimeout.code
            raise SourceTimeout(self.name, f"recorded exceeded {self.timeout_s}s") from exc
        except ValueError:
            status = "INVALID_KEY"
            raise
        except (SQLAlchemyError, OSError) as exc:
            status = SourceUnavailable.code
            raise SourceUnavailable(self.name, f"recorded failed: {exc}") from exc
        finally:
            record_call(SourceCall(self.name, "recorded", status, ms_since(started), 1))
        if raw is None:
            return None
        if operation == "receive_stock":
            return self._stock_result(raw)
        return self._order_result(raw)

    # --- the transaction -----------------------------------------------------------------------------

    async def _write(self, operation: str, key: str, keys: int,
                     work: Callable[[AsyncConnection], Awaitable[Raw]]) -> Raw:
        """The raw result of `work` run in one transaction with the key's ledger row, retried on conflicts;
        or the result stored under the key when it was applied before."""
        _check_key(key)
        started = time.perf_counter()
        status = "ok"
        attempt = 0
        try:
            if os.environ.get(FAULT_VARIABLE) == operation:
                raise SourceUnavailable(self.name, f"{operation}: fault injected ({FAULT_VARIABLE})")
            while True:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        try:
                            return await self._transaction(operation, key, work)
                        except _KeyApplied:
                            stored = await self._stored(operation, key)
                            if stored is not None:
                                return stored
                            raise _Conflict("the key's ledger row is gone") from None
                except (_Conflict, DBAPIError) as exc:
                    if isinstance(exc, DBAPIError) and not _retryable(exc):
                        raise
                    if attempt == RETRIES:
                        raise SourceUnavailable(self.name, f"{operation} lost to concurrent writes "
                                                           f"{RETRIES + 1} times: {exc}") from exc
                    await asyncio.sleep(random.uniform(0, RETRY_BACKOFF_S * 2**attempt))
                    attempt += 1
        except TimeoutError as exc:
            status = SourceTimeout.code
            raise SourceTimeout(self.name, f"{operation} exceeded {self.timeout_s}s") from exc
        except (RuleViolation, SourceError) as exc:
            status = exc.code
            raise
        except ValueError:
            status = "INVALID_KEY"  # a key used before by another operation: the caller's bug
            raise
        except (SQLAlchemyError, OSError) as exc:
            status = SourceUnavailable.code
            raise SourceUnavailable(self.name, f"{operation} failed: {exc}") from exc
        finally:
            record_call(SourceCall(self.name, operation, status, ms_since(started), keys))

    async def _transaction(self, operation: str, key: str, work: Callable[[AsyncConnection], Awaitable[Raw]]
                           ) -> Raw:
        async with self.engine.connect() as conn, conn.begin():
            # The key's ledger row comes first: a concurrent write with the same key waits here, holding no
            # other lock, until this one commits (then finds the key applied) or rolls back (then applies).
            try:
                await conn.execute(GWSTEP.insert().values(GSKEY=key, GSOPER=operation, GSRSLT="",
                                                          GSTIME=int(time.time() * 1000)))
            except IntegrityError:
                raise _KeyApplied from None
            result = await work(conn)
            await conn.execute(GWSTEP.update().where(GWSTEP.c.GSKEY == key)
                               .values(GSRSLT=json.dumps(result, separators=(",", ":"))))
            return result

    async def _stored(self, operation: str, key: str) -> Raw | None:
        async with self.engine.connect() as conn, conn.begin():
            row = (await conn.execute(select(GWSTEP.c.GSOPER, GWSTEP.c.GSRSLT).where(GWSTEP.c.GSKEY == key))).first()
        if row is None:
            return None
        if row.GSOPER != operation:
            raise ValueError(f"idempotency key {key!r} was used for {row.GSOPER}, not {operation}")
        stored: Raw = json.loads(row.GSRSLT)
        return stored

    def _stock_result(self, raw: Raw) -> tuple[ErpStock, ...]:
        return tuple(STOCK_MAP.apply(row, source=self.name) for row in raw["stock"])

    def _order_result(self, raw: Raw) -> ErpOrderWrite:
        return ErpOrderWrite(ORDER_MAP.apply(raw["order"], source=self.name),
                             tuple(LINE_MAP.apply(r, source=self.name) for r in raw["lines"]),
                             tuple(STOCK_MAP.apply(r, source=self.name) for r in raw["stock"]))

    # --- the writes, inside their transaction ---------------------------------------------------------

    async def _place_order(self, conn: AsyncConnection, customer: str, warehouse: str, lines: Lines) -> Raw:
        found = (await conn.execute(
            select(CUSMAS.c.CMCUNO, CUSMAS.c.CMSTAT, CUSMAS.c.CMCRLM, CUSMAS.c.CMBALD, CUSMAS.c.CMCURR)
            .where(CUSMAS.c.CMCUNO == customer_key(customer)).with_for_update())).first()
        if found is None:
            raise RuleViolation("UNKNOWN_CUSTOMER", f"no customer {customer.strip()}", "input.customer")
        if str(found.CMSTAT).strip() != "A":
            raise RuleViolation("CUSTOMER_INACTIVE", f"customer {customer.strip()} is inactive", "input.customer")
        if (str(found.CMCURR).strip() or self.currency) != self.currency:
            # The item master has one price list, in the ERP's currency; there are no exchange rates to
            # convert it, and a total in one currency cannot be checked against a credit limit in another.
            raise RuleViolation("CURRENCY_NOT_PRICED",
                                f"customer {customer.strip()} is billed in {str(found.CMCURR).strip()}, but the "
                                f"item master prices only in {self.currency}", "input.customer")
        currency = (str(found.CMCURR or "").strip() or self.currency).upper()
        wh = await self._warehouse(conn, warehouse)
        prices = await self._items(conn, lines)

        total = sum(prices[item_key(sku)] * quantity for sku, quantity in lines)
        open_total = (await conn.execute(
            select(func.coalesce(func.sum(ORDHDR.c.OHTOTL), 0))
            .where(ORDHDR.c.OHCUNO == found.CMCUNO, ORDHDR.c.OHSTAT.in_(OPEN_STATUSES)))).scalar_one()
        available = int(found.CMCRLM) - int(found.CMBALD) - int(open_total)
        if total > available:
            raise RuleViolation("CREDIT_LIMIT_EXCEEDED", (
                f"the order's total {_money(total, currency)} is more than the available credit "
                f"{_money(max(available, 0), currency)}"), "input.lines")

        items = [item_key(sku) for sku, _ in lines]
        balances = await self._lock_balances(conn, wh, items)
        stock = []
        for i, (item, (_, quantity)) in enumerate(zip(items, lines, strict=True)):
            row = balances.get(item)  # no balance row: no stock
            free = int(row["IBQOH"]) - int(row["IBQAL"]) if row else 0
            if row is None or free < quantity:
                raise RuleViolation("INSUFFICIENT_STOCK", (
                    f"only {max(free, 0)} of {item.strip()} available in {wh.strip()}, {quantity} ordered"),
                    _sku_field(i, "quantity"))
            stock.append(_stock_row(row, int(row["IBQOH"]), int(row["IBQAL"]) + quantity))

        number = await self._next_order_number(conn)
        header = {"OHORNO": number, "OHCUNO": str(found.CMCUNO), "OHORDT": to_cyymmdd(self.today()),
                  "OHSTAT": "A", "OHTOTL": total, "OHCURR": currency, "OHWHSE": wh}
        details = [{"ODORNO": number, "ODLINE": n + 1, "ODITNO": item, "ODQORD": quantity,
                    "ODUPRC": prices[item]} for n, (item, (_, quantity)) in enumerate(zip(items, lines, strict=True))]
        for item, (_, quantity) in zip(items, lines, strict=True):
            await conn.execute(ITMBAL.update().where(ITMBAL.c.IBITNO == item, ITMBAL.c.IBWHSE == wh)
                               .values(IBQAL=ITMBAL.c.IBQAL + quantity))
        await conn.execute(ORDHDR.insert().values(**header))
        await conn.execute(ORDDTL.insert(), details)
        return {"order": header, "lines": [{**d, "OHCURR": currency} for d in details], "stock": stock}

    async def _settle_order(self, conn: AsyncConnection, number: int, *, cancel: bool) -> Raw:
        """Cancel (releasing its allocation) or ship (taking its stock) an open or allocated order."""
        header = (await conn.execute(select(*(ORDHDR.c[n] for n in ORDER_MAP.raw_names))
                                     .where(ORDHDR.c.OHORNO == number).with_for_update())).mappings().first()
        if header is None:
            raise RuleViolation("ORDER_NOT_FOUND", f"no order {number}", "number")
        status = str(header["OHSTAT"]).strip()
        if status not in OPEN_STATUSES:
            shown = ORDER_STATUS[status].value.lower() if status in ORDER_STATUS else repr(status)
            code, verb = ("ORDER_NOT_CANCELLABLE", "cancelled") if cancel else ("ORDER_NOT_SHIPPABLE", "shipped")
            raise RuleViolation(code, f"order {number} is {shown} and cannot be {verb}", "number")
        currency = str(header["OHCURR"])
        lines = [dict(r) for r in (await conn.execute(
            select(ORDDTL.c.ODORNO, ORDDTL.c.ODLINE, ORDDTL.c.ODITNO, ORDDTL.c.ODQORD, ORDDTL.c.ODUPRC)
            .where(ORDDTL.c.ODORNO == number).order_by(ORDDTL.c.ODLINE))).mappings()]
        quantities: dict[str, int] = {}  # per item: legacy orders may have an item on two lines
        for line in lines:
            item = item_key(str(line["ODITNO"]))
            quantities[item] = quantities.get(item, 0) + int(line["ODQORD"])

        allocated = status == "A"
        stock = []
        if allocated or not cancel:
            wh = str(header["OHWHSE"] or "")
            balances = await self._lock_balances(conn, wh, list(quantities))
            for item in sorted(quantities):
                quantity, row = quantities[item], balances.get(item)
                on_hand = int(row["IBQOH"]) if row else 0
                if not cancel and on_hand < quantity:
                    raise RuleViolation("INSUFFICIENT_STOCK", (
                        f"only {max(on_hand, 0)} of {item.strip()} on hand in {wh.strip()}, {quantity} to ship"))
                if row is None:
                    continue  # nothing to release, and nothing to ship from (refused above)
                after_on_hand = on_hand if cancel else on_hand - quantity
                after_allocated = max(int(row["IBQAL"]) - quantity, 0) if allocated else int(row["IBQAL"])
                await conn.execute(ITMBAL.update().where(ITMBAL.c.IBITNO == row["IBITNO"],
                                                         ITMBAL.c.IBWHSE == row["IBWHSE"])
                                   .values(IBQOH=after_on_hand, IBQAL=after_allocated))
                stock.append(_stock_row(row, after_on_hand, after_allocated))
        new_status = "C" if cancel else "S"
        await conn.execute(ORDHDR.update().where(ORDHDR.c.OHORNO == number).values(OHSTAT=new_status))
        order = {name: header[name] for name in ORDER_MAP.raw_names}
        order.update(OHORNO=int(order["OHORNO"]), OHCUNO=str(order["OHCUNO"]), OHORDT=int(order["OHORDT"]),
                     OHSTAT=new_status, OHTOTL=int(order["OHTOTL"]), OHCURR=currency,
                     OHWHSE=None if order["OHWHSE"] is None else str(order["OHWHSE"]))
        return {"order": order,
                "lines": [{"ODORNO": int(r["ODORNO"]), "ODLINE": int(r["ODLINE"]), "ODITNO": str(r["ODITNO"]),
                           "ODQORD": int(r["ODQORD"]), "ODUPRC": int(r["ODUPRC"]), "OHCURR": currency}
                          for r in lines],
                "stock": stock}

    async def _receive_stock(self, conn: AsyncConnection, warehouse: str, lines: Lines) -> Raw:
        wh = await self._warehouse(conn, warehouse)
        await self._items(conn, lines)
        received: dict[str, int] = {}  # item -> quantity, in the order first given
        for sku, quantity in lines:
            received[item_key(sku)] = received.get(item_key(sku), 0) + quantity
        balances = await self._lock_balances(conn, wh, list(received))
        stock = {}
        for item in sorted(received):
            row = balances.get(item)
            if row is None:
                try:
                    await conn.execute(ITMBAL.insert().values(IBITNO=item, IBWHSE=wh, IBQOH=received[item], IBQAL=0))
                except IntegrityError:
                    raise _Conflict(f"a balance of {item.strip()} in {wh} was created concurrently") from None
                stock[item] = {"IBITNO": item, "IBWHSE": wh, "IBQOH": received[item], "IBQAL": 0}
            else:
                await conn.execute(ITMBAL.update().where(ITMBAL.c.IBITNO == row["IBITNO"],
                                                         ITMBAL.c.IBWHSE == row["IBWHSE"])
                                   .values(IBQOH=ITMBAL.c.IBQOH + received[item]))
                stock[item] = _stock_row(row, int(row["IBQOH"]) + received[item], int(row["IBQAL"]))
        return {"stock": [stock[item] for item in received]}

    # --- reads and locks inside a write --------------------------------------------------------------

    async def _warehouse(self, conn: AsyncConnection, warehouse: str) -> str:
        """The warehouse's code as WHSMAS has it (compared exactly: MariaDB would also match another case)."""
        code = (await conn.execute(select(WHSMAS.c.WHWHSE).where(WHSMAS.c.WHWHSE == warehouse.strip()))).scalar()
        if code is None or str(code).strip() != warehouse.strip():
            raise RuleViolation("UNKNOWN_WAREHOUSE", f"no warehouse {warehouse.strip()}", "input.warehouse")
        return str(code)

    async def _items(self, conn: AsyncConnection, lines: Lines) -> dict[str, int]:
        """The list price in cents of each line's item, by item key; UNKNOWN_SKU for the first line whose item
        is not in ITMMAS (compared exactly: MariaDB would also match another case)."""
        keys = sorted({item_key(sku) for sku, _ in lines})
        rows = (await conn.execute(select(ITMMAS.c.IMITNO, ITMMAS.c.IMLPRC).where(ITMMAS.c.IMITNO.in_(keys)))).all()
        prices = {item_key(str(r.IMITNO)): int(r.IMLPRC) for r in rows}
        for i, (sku, _) in enumerate(lines):
            if item_key(sku) not in prices:
                raise RuleViolation("UNKNOWN_SKU", f"no item {sku.strip()}", _sku_field(i, "sku"))
        return prices

    async def _lock_balances(self, conn: AsyncConnection, warehouse: str, items: Sequence[str]
                             ) -> dict[str, dict[str, Any]]:
        """The stock balances of these items in the warehouse, by item key, locked in item order; an item
        with no balance row is absent (nothing to lock: it has no stock)."""
        if not items:
            return {}
        rows = (await conn.execute(
            select(ITMBAL.c.IBITNO, ITMBAL.c.IBWHSE, ITMBAL.c.IBQOH, ITMBAL.c.IBQAL)
            .where(ITMBAL.c.IBWHSE == warehouse, ITMBAL.c.IBITNO.in_(sorted(set(items))))
            .order_by(ITMBAL.c.IBITNO, ITMBAL.c.IBWHSE).with_for_update())).mappings().all()
        return {item_key(str(r["IBITNO"])): dict(r) for r in rows}

    async def _next_order_number(self, conn: AsyncConnection) -> int:
        """Take the next order number from the ERP's number range (locked last, so held briefly)."""
        current = (await conn.execute(select(NUMCTL.c.NCNEXT).where(NUMCTL.c.NCKEY == ORDER_RANGE)
                                      .with_for_update())).scalar()
        if current is None:
            # An ERP seeded before the range existed: start it after the highest order number. Two writers
            # doing this at once both insert the row; the second fails on its key and runs again.
            highest = (await conn.execute(select(func.max(ORDHDR.c.OHORNO)))).scalar()
            number = int(highest or 0) + 1
            try:
                await conn.execute(NUMCTL.insert().values(NCKEY=ORDER_RANGE, NCNEXT=number + 1))
            except IntegrityError:
                raise _Conflict("the order number range was initialised concurrently") from None
            return number
        number = int(current)
        await conn.execute(NUMCTL.update().where(NUMCTL.c.NCKEY == ORDER_RANGE).values(NCNEXT=number + 1))
        return number


def _money(cents: int, currency: str) -> str:
    money = Money.from_cents(cents, currency)
    return f"{money.amount} {money.currency}"


__all__ = ["FAULT_VARIABLE", "GWSTEP", "NUMCTL", "ErpOrderWrite", "ErpWriter"]
