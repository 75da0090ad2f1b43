"""The legacy ERP: declarative maps of its tables and the batched reads the gateway needs."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, Executable, Integer, String, and_, column, func, or_, select, table
from sqlalchemy.sql.expression import ColumnClause, TableClause

from sources.base import Health, Slice
from sources.cache import Cache, NoCache
from sources.cursors import CursorKind
from sources.errors import MappingError
from sources.mapping import (
    Field,
    RecordMap,
    code,
    cyymmdd,
    integer,
    money_cents,
    optional,
    phone,
    strip,
    text,
    title_text,
    to_cyymmdd,
)
from sources.sql import Prepared, SqlTransport
from sources.values import CustomerStatus, Money, OrderStatus, PartnerKind, PaymentTerms

K = TypeVar("K")
MAX_STATEMENTS = 256  # compiled statements an ERP source keeps (one per query shape and page query)

# --- clean records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErpCustomer:
    number: str
    name: str
    phone: str | None
    credit_limit: Money
    balance: Money
    terms: PaymentTerms
    status: CustomerStatus


@dataclass(frozen=True, slots=True)
class ErpOrder:
    number: int
    customer: str
    placed: date
    status: OrderStatus
    total: Money
    warehouse: str | None


@dataclass(frozen=True, slots=True)
class ErpOrderLine:
    order: int
    line: int
    item: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class ErpItem:
    number: str
    description: str
    uom: str
    main_vendor: str | None
    list_price: Money


@dataclass(frozen=True, slots=True)
class ErpStock:
    item: str
    warehouse: str
    on_hand: int
    allocated: int


@dataclass(frozen=True, slots=True)
class ErpWarehouse:
    code: str
    name: str
    city: str | None
    country: str | None


@dataclass(frozen=True, slots=True)
class ErpVendor:
    number: str
    name: str
    kind: PartnerKind
    country: str | None


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """Filters and page of an order list; part of the batch (and cache) key."""

    first: int
    after: str | None = None
    statuses: tuple[OrderStatus, ...] = ()
    placed_from: date | None = None
    placed_to: date | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class ItemQuery:
    first: int
    after: str | None = None
    text: str | None = None


# --- legacy codes -----------------------------------------------------------------------------------

ORDER_STATUS = {"O": OrderStatus.OPEN, "A": OrderStatus.ALLOCATED, "S": OrderStatus.SHIPPED,
                "I": OrderStatus.INVOICED, "C": OrderStatus.CANCELLED}
ORDER_STATUS_CODE = {v: k for k, v in ORDER_STATUS.items()}
TERMS = {"N30": PaymentTerms.NET_30, "N60": PaymentTerms.NET_60, "COD": PaymentTerms.CASH_ON_DELIVERY}
CUSTOMER_STATUS = {"A": CustomerStatus.ACTIVE, "I": CustomerStatus.INACTIVE}
VENDOR_KIND = {"S": PartnerKind.SUPPLIER, "C": PartnerKind.CARRIER}

CUSTOMER_NUMBER_WIDTH = 8
ITEM_NUMBER_WIDTH = 15


def customer_key(number: str) -> str:
    """A clean customer number as CUSMAS stores it: right-aligned in CHAR(8)."""
    return number.strip().rjust(CUSTOMER_NUMBER_WIDTH)


def item_key(number: str) -> str:
    """A clean item number as ITMMAS stores it: left-aligned in CHAR(15)."""
    return number.strip().ljust(ITEM_NUMBER_WIDTH)


# --- tables and maps --------------------------------------------------------------------------------

CUSMAS = table("CUSMAS", *(column(n, String) for n in ("CMCUNO", "CMNAME", "CMPHON", "CMTERM", "CMSTAT",
                                                         "CMCURR")),
               column("CMCRLM", Integer), column("CMBALD", Integer))
ORDHDR = table("ORDHDR", column("OHORNO", Integer), column("OHCUNO", String), column("OHORDT", Integer),
               column("OHSTAT", String), column("OHTOTL", Integer), column("OHCURR", String),
               column("OHWHSE", String))
ORDDTL = table("ORDDTL", column("ODORNO", Integer), column("ODLINE", Integer), column("ODITNO", String),
               column("ODQORD", Integer), column("ODUPRC", Integer))
ITMMAS = table("ITMMAS", column("IMITNO", String), column("IMDESC", String), column("IMUOM", String),
               column("IMVNNO", String), column("IMLPRC", Integer))
ITMBAL = table("ITMBAL", column("IBITNO", String), column("IBWHSE", String), column("IBQOH", Integer),
               column("IBQAL", Integer))
WHSMAS = table("WHSMAS", column("WHWHSE", String), column("WHDESC", String), column("WHCITY", String),
               column("WHCTRY", String))
VENMAS = table("VENMAS", column("VNVNNO", String), column("VNNAME", String), column("VNTYPE", String),
               column("VNCTRY", String))


def customer_map(phone_region: str) -> RecordMap[ErpCustomer]:
    return RecordMap(ErpCustomer, {
        "number": Field("CMCUNO", text),
        "name": Field("CMNAME", text),
        "phone": Field("CMPHON", phone(phone_region)),
        "credit_limit": Field(("CMCRLM", "CMCURR"), money_cents),
        "balance": Field(("CMBALD", "CMCURR"), money_cents),
        "terms": Field("CMTERM", code(PaymentTerms, TERMS)),
        "status": Field("CMSTAT", code(CustomerStatus, CUSTOMER_STATUS)),
    })


ORDER_MAP = RecordMap(ErpOrder, {
    "number": Field("OHORNO", integer),
    "customer": Field("OHCUNO", text),
    "placed": Field("OHORDT", cyymmdd),
    "status": Field("OHSTAT", code(OrderStatus, ORDER_STATUS)),
    "total": Field(("OHTOTL", "OHCURR"), money_cents),
    "warehouse": Field("OHWHSE", strip),
})

LINE_MAP = RecordMap(ErpOrderLine, {
    "order": Field("ODORNO", integer),
    "line": Field("ODLINE", integer),
    "item": Field("ODITNO", text),
    "quantity": Field("ODQORD", integer),
    "unit_price": Field(("ODUPRC", "OHCURR"), money_cents),
})


def item_map(currency: str) -> RecordMap[ErpItem]:
    return RecordMap(ErpItem, {
        "number": Field("IMITNO", text),
        "description": Field("IMDESC", lambda v: title_text(text(v))),
        "uom": Field("IMUOM", text),
        "main_vendor": Field("IMVNNO", strip),
        "list_price": Field("IMLPRC", lambda cents: money_cents(cents, currency)),
    })


STOCK_MAP = RecordMap(ErpStock, {
    "item": Field("IBITNO", text),
    "warehouse": Field("IBWHSE", text),
    "on_hand": Field("IBQOH", integer),
    "allocated": Field("IBQAL", integer),
})

WAREHOUSE_MAP = RecordMap(ErpWarehouse, {
    "code": Field("WHWHSE", text),
    "name": Field("WHDESC", lambda v: title_text(text(v))),
    "city": Field("WHCITY", strip),
    "country": Field("WHCTRY", strip),
})

VENDOR_MAP = RecordMap(ErpVendor, {
    "number": Field("VNVNNO", text),
    "name": Field("VNNAME", text),
    "kind": Field("VNTYPE", code(PartnerKind, VENDOR_KIND)),
    "country": Field("VNCTRY", optional(strip)),
})


def _cols(t: TableClause, record_map: RecordMap[Any]) -> list[ColumnClause[Any]]:
    return [t.c[name] for name in record_map.raw_names if name in t.c]


#: Orders run newest first, keyed by (date, number); all orders and one customer's are separate lists.
ORDER_CURSOR = CursorKind("orders", (int, int))
CUSTOMER_ORDER_CURSOR = CursorKind("customerOrders", (int, int))
#: Items run in item-number order.
ITEM_CURSOR = CursorKind("products", (str,))


def _order_keyset(cursor: CursorKind, after: str | None) -> ColumnElement[bool] | None:
    """Orders run newest first: (date desc, number desc). Resume strictly after the cursor's order."""
    parts = cursor.after(after)
    if parts is None:
        return None
    day, number = int(parts[0]), int(parts[1])
    return or_(ORDHDR.c.OHORDT < day, and_(ORDHDR.c.OHORDT == day, ORDHDR.c.OHORNO < number))


def _order_filters(query: OrderQuery, transport: SqlTransport, cursor: CursorKind) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.statuses:
        where.append(transport.key_in(ORDHDR.c.OHSTAT, "statuses", [ORDER_STATUS_CODE[s] for s in query.statuses]))
    if query.placed_from:
        where.append(ORDHDR.c.OHORDT >= to_cyymmdd(query.placed_from))
    if query.placed_to:
        where.append(ORDHDR.c.OHORDT <= to_cyymmdd(query.placed_to))
    if query.customer:
        where.append(ORDHDR.c.OHCUNO == customer_key(query.customer))
    keyset = _order_keyset(cursor, query.after)
    if keyset is not None:
        where.append(keyset)
    return where


def _group(rows: Sequence[dict[str, Any]], keys: Sequence[K], key_of: Callable[[dict[str, Any]], K]
           ) -> dict[K, list[dict[str, Any]]]:
    """Rows by the key they belong to; every requested key is present (an empty list is an answer too)."""
    grouped: dict[K, list[dict[str, Any]]] = {k: [] for k in keys}
    for row in rows:
        grouped.setdefault(key_of(row), []).append(row)
    return grouped


def _order_position(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["OHORDT"]), int(row["OHORNO"])


class ErpSource:
    """Reads from the ERP database. Every method takes a batch of keys and costs one statement."""

    #: Entities a change notice may name -> the operations whose cached answers it makes wrong.
    ENTITY_OPERATIONS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "customer": ("customers",),
        "order": ("orders", "order_page", "orders_of_customers", "lines_of_orders", "items_of_orders",
                  "stock_of_orders"),
        "item": ("items", "item_page", "items_of_orders"),
        "stock": ("stock_of_items", "stock_of_orders"),
        "warehouse": ("warehouses",),
        "vendor": ("vendors",),
    }

    def __init__(self, transport: SqlTransport, *, currency: str = "USD", phone_region: str = "US",
                 cache: Cache | None = None) -> None:
        self.name = transport.name
        self.transport = transport
        self.cache: Cache = cache or NoCache()
        self.customer_map = customer_map(phone_region)
        self.item_map = item_map(currency)
        self._statements: dict[Hashable, Prepared] = {}

    def _statement(self, key: Hashable, build: Callable[[], Executable]) -> Prepared:
        """The statement for `key`, built and compiled the first time it is asked for (a bounded number kept)."""
        found = self._statements.get(key)
        if found is None:
            if len(self._statements) >= MAX_STATEMENTS:
                del self._statements[next(iter(self._statements))]  # the oldest: page queries come and go
            found = self._statements[key] = self.transport.prepare(build())
        return found

    async def _keyed(self, operation: str, build: Callable[[], Executable], keys: Sequence[Any],
                     key: Hashable = None) -> Sequence[dict[str, Any]]:
        """The rows of a statement over a batch of keys (its `keys` parameter)."""
        return await self.transport.rows(operation, self._statement((operation, key), build),
                                         params={"keys": self.transport.key_values(keys)}, keys=len(keys))

    async def _rows_of_orders(self, operation: str, build: Callable[[], Executable],
                              numbers: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """The rows of a statement keyed by order number (`ODORNO` in each row), per order, through the cache."""
        async def fetch(wanted: list[int]) -> dict[int, list[dict[str, Any]]]:
            rows = await self._keyed(operation, build, wanted)
            return _group(rows, wanted, lambda r: int(r["ODORNO"]))

        raw: dict[int, list[dict[str, Any]]] = await self.cache.many(self.name, operation, numbers, None, fetch)
        return raw

    def _map(self, record_map: RecordMap[Any], row: dict[str, Any]) -> Any:
        return record_map.apply(row, source=self.name)

    async def customers(self, numbers: Sequence[str], _: None = None) -> dict[str, ErpCustomer]:
        def build() -> Executable:
            return select(*_cols(CUSMAS, self.customer_map)).where(self.transport.key_in(CUSMAS.c.CMCUNO))

        async def fetch(wanted: list[str]) -> dict[str, dict[str, Any]]:
            rows = await self._keyed("customers", build, [customer_key(n) for n in wanted])
            return {str(r["CMCUNO"]).strip(): r for r in rows}

        raw = await self.cache.many(self.name, "customers", numbers, None, fetch)
        return {n: self._map(self.customer_map, r) for n, r in raw.items()}

    async def orders(self, numbers: Sequence[int], _: None = None) -> dict[int, ErpOrder]:
        def build() -> Executable:
            return select(*_cols(ORDHDR, ORDER_MAP)).where(self.transport.key_in(ORDHDR.c.OHORNO))

        async def fetch(wanted: list[int]) -> dict[int, dict[str, Any]]:
            rows = await self._keyed("orders", build, wanted)
            return {int(r["OHORNO"]): r for r in rows}

        raw = await self.cache.many(self.name, "orders", numbers, None, fetch)
        return {n: self._map(ORDER_MAP, r) for n, r in raw.items()}

    async def order_page(self, query: OrderQuery) -> Slice[ErpOrder]:
        """One page of all orders matching the filters, newest first."""
        # A bad cursor fails here, before the cache or the database.
        where = _order_filters(query, self.transport, ORDER_CURSOR)

        def build() -> Executable:
            return (select(*_cols(ORDHDR, ORDER_MAP)).where(*where)
                    .order_by(ORDHDR.c.OHORDT.desc(), ORDHDR.c.OHORNO.desc()).limit(query.first + 1))

        async def fetch() -> list[dict[str, Any]]:
            return list(await self.transport.rows("order_page", self._statement(("order_page", query), build)))

        return self._slice(await self.cache.one(self.name, "order_page", query, fetch), query.first, ORDER_CURSOR)

    async def orders_of_customers(self, numbers: Sequence[str], query: OrderQuery) -> dict[str, Slice[ErpOrder]]:
        """The first page of orders of each customer, in one windowed statement."""
        where = _order_filters(query, self.transport, CUSTOMER_ORDER_CURSOR)

        def build() -> Executable:
            rank = func.row_number().over(partition_by=ORDHDR.c.OHCUNO,
                                          order_by=(ORDHDR.c.OHORDT.desc(), ORDHDR.c.OHORNO.desc())).label("_rank")
            inner = select(*_cols(ORDHDR, ORDER_MAP), rank).where(self.transport.key_in(ORDHDR.c.OHCUNO),
                                                                  *where).subquery()
            return (select(*(inner.c[n] for n in ORDER_MAP.raw_names)).where(inner.c._rank <= query.first + 1)
                    .order_by(inner.c.OHCUNO, inner.c.OHORDT.desc(), inner.c.OHORNO.desc()))

        async def fetch(wanted: list[str]) -> dict[str, list[dict[str, Any]]]:
            rows = await self._keyed("orders_of_customers", build, [customer_key(n) for n in wanted], query)
            grouped: dict[str, list[dict[str, Any]]] = {n: [] for n in wanted}
            for row in rows:
                grouped[str(row["OHCUNO"]).strip()].append(row)
            return grouped

        raw = await self.cache.many(self.name, "orders_of_customers", numbers, query, fetch)
        return {n: self._slice(raw.get(n, []), query.first, CUSTOMER_ORDER_CURSOR) for n in numbers}

    def _slice(self, rows: list[dict[str, Any]], first: int, cursor: CursorKind) -> Slice[ErpOrder]:
        page = rows[:first]
        return Slice(tuple(self._map(ORDER_MAP, r) for r in page),
                     tuple(cursor.encode(*_order_position(r)) for r in page), len(rows) > first)

    async def lines_of_orders(self, numbers: Sequence[int], _: None = None) -> dict[int, tuple[ErpOrderLine, ...]]:
        def build() -> Executable:
            return (select(*(ORDDTL.c[n] for n in LINE_MAP.raw_names if n != "OHCURR"), ORDHDR.c.OHCURR)
                    .join_from(ORDDTL, ORDHDR, ORDDTL.c.ODORNO == ORDHDR.c.OHORNO)
                    # The keys on both sides: with them only on the lines, PostgreSQL's generic plan for a
                    # key array hash-joins the whole order header table (10 ms instead of 0.25 ms).
                    .where(self.transport.key_in(ORDDTL.c.ODORNO), self.transport.key_in(ORDHDR.c.OHORNO))
                    .order_by(ORDDTL.c.ODORNO, ORDDTL.c.ODLINE))

        raw = await self._rows_of_orders("lines_of_orders", build, numbers)
        return {n: tuple(self._map(LINE_MAP, r) for r in raw.get(n, ())) for n in numbers}

    async def items_of_orders(self, numbers: Sequence[int], _: None = None) -> dict[int, dict[str, ErpItem]]:
        """The items on each order's lines, by item number.

        Keyed by the order numbers, this is read beside the lines rather than after them: the ERP finds
        the items through the lines itself, which saves the request a round of calls.
        """
        def build() -> Executable:
            return (select(ORDDTL.c.ODORNO, *_cols(ITMMAS, self.item_map))
                    .join_from(ORDDTL, ITMMAS, ITMMAS.c.IMITNO == ORDDTL.c.ODITNO)
                    .where(self.transport.key_in(ORDDTL.c.ODORNO)))

        raw = await self._rows_of_orders("items_of_orders", build, numbers)
        out: dict[int, dict[str, ErpItem]] = {}
        for n in numbers:
            items = (self._map(self.item_map, r) for r in raw.get(n, ()))
            out[n] = {item.number: item for item in items}
        return out

    async def stock_of_orders(self, numbers: Sequence[int], _: None = None
                              ) -> dict[int, dict[str, tuple[ErpStock, ...]]]:
        """The stock of the items on each order's lines, by item number (read beside the lines, as above)."""
        def build() -> Executable:
            return (select(ORDDTL.c.ODORNO, *_cols(ITMBAL, STOCK_MAP))
                    .join_from(ORDDTL, ITMBAL, ITMBAL.c.IBITNO == ORDDTL.c.ODITNO)
                    .where(self.transport.key_in(ORDDTL.c.ODORNO))
                    .order_by(ORDDTL.c.ODORNO, ITMBAL.c.IBITNO, ITMBAL.c.IBWHSE))

        raw = await self._rows_of_orders("stock_of_orders", build, numbers)
        out: dict[int, dict[str, tuple[ErpStock, ...]]] = {}
        for n in numbers:
            levels: dict[str, dict[str, ErpStock]] = {}
            for row in raw.get(n, ()):
                level: ErpStock = self._map(STOCK_MAP, row)
                levels.setdefault(level.item, {})[level.warehouse] = level  # an item on two lines: once
            out[n] = {item: tuple(by_warehouse.values()) for item, by_warehouse in levels.items()}
        return out

    async def items(self, numbers: Sequence[str], _: None = None) -> dict[str, ErpItem]:
        def build() -> Executable:
            return select(*_cols(ITMMAS, self.item_map)).where(self.transport.key_in(ITMMAS.c.IMITNO))

        async def fetch(wanted: list[str]) -> dict[str, dict[str, Any]]:
            rows = await self._keyed("items", build, [item_key(n) for n in wanted])
            return {str(r["IMITNO"]).strip(): r for r in rows}

        raw = await self.cache.many(self.name, "items", numbers, None, fetch)
        return {n: self._map(self.item_map, r) for n, r in raw.items()}

    async def item_page(self, query: ItemQuery) -> Slice[ErpItem]:
        """Items by text (in number or description), in item-number order."""
        stmt = select(*_cols(ITMMAS, self.item_map)).order_by(ITMMAS.c.IMITNO).limit(query.first + 1)
        if query.text:
            needle = query.text.strip().upper()
            stmt = stmt.where(or_(func.upper(ITMMAS.c.IMDESC).contains(needle, autoescape=True),
                                  func.upper(ITMMAS.c.IMITNO).contains(needle, autoescape=True)))
        after = ITEM_CURSOR.after(query.after)  # a bad cursor fails here, before the cache or the database
        if after is not None:
            stmt = stmt.where(ITMMAS.c.IMITNO > item_key(str(after[0])))

        async def fetch() -> list[dict[str, Any]]:
            return list(await self.transport.rows("item_page", self._statement(("item_page", query), lambda: stmt)))

        rows: list[dict[str, Any]] = await self.cache.one(self.name, "item_page", query, fetch)
        page = [self._map(self.item_map, r) for r in rows[: query.first]]
        return Slice(tuple(page), tuple(ITEM_CURSOR.encode(i.number) for i in page), len(rows) > query.first)

    async def stock_of_items(self, numbers: Sequence[str], _: None = None) -> dict[str, tuple[ErpStock, ...]]:
        def build() -> Executable:
            return (select(*_cols(ITMBAL, STOCK_MAP)).where(self.transport.key_in(ITMBAL.c.IBITNO))
                    .order_by(ITMBAL.c.IBITNO, ITMBAL.c.IBWHSE))

        async def fetch(wanted: list[str]) -> dict[str, list[dict[str, Any]]]:
            rows = await self._keyed("stock_of_items", build, [item_key(n) for n in wanted])
            return _group(rows, wanted, lambda r: str(r["IBITNO"]).strip())

        raw = await self.cache.many(self.name, "stock_of_items", numbers, None, fetch)
        return {n: tuple(self._map(STOCK_MAP, r) for r in raw.get(n, ())) for n in numbers}

    async def warehouses(self, codes: Sequence[str] | None = None, _: None = None) -> dict[str, ErpWarehouse]:
        """Warehouses by code; all of them when `codes` is None (there are only a few)."""
        rows = await self._reference("warehouses", WHSMAS, WHSMAS.c.WHWHSE, WAREHOUSE_MAP, codes)
        return {w.code: w for w in (self._map(WAREHOUSE_MAP, r) for r in rows)}

    async def warehouse_table(self, keys: Sequence[str], _: None = None) -> dict[str, dict[str, ErpWarehouse]]:
        """All warehouses by code, under each loader key asked for (one read however many levels need them)."""
        table = await self.warehouses(None)
        return {k: table for k in keys}

    async def vendors(self, numbers: Sequence[str] | None = None, _: None = None) -> dict[str, ErpVendor]:
        """Vendors (the ERP's view of partners) by number; all of them when `numbers` is None."""
        rows = await self._reference("vendors", VENMAS, VENMAS.c.VNVNNO, VENDOR_MAP, numbers)
        return {v.number: v for v in (self._map(VENDOR_MAP, r) for r in rows)}

    async def _reference(self, operation: str, table_: TableClause, key: ColumnClause[Any],
                         record_map: RecordMap[Any], keys: Sequence[str] | None) -> list[dict[str, Any]]:
        """A small reference table (warehouses, vendors): read and cached whole, filtered here."""

        def build() -> Executable:
            return select(*_cols(table_, record_map)).order_by(key)

        async def fetch() -> list[dict[str, Any]]:
            return list(await self.transport.rows(operation, self._statement(operation, build)))

        rows: list[dict[str, Any]] = await self.cache.one(self.name, operation, None, fetch)
        if keys is None:
            return rows
        wanted = {k.strip() for k in keys}
        return [r for r in rows if str(r[key.name]).strip() in wanted]

    async def health(self) -> Health:
        return await self.transport.health()

    async def aclose(self) -> None:
        await self.transport.aclose()


__all__ = ["ErpCustomer", "ErpItem", "ErpOrder", "ErpOrderLine", "ErpSource", "ErpStock", "ErpVendor",
           "ErpWarehouse", "ItemQuery", "MappingError", "OrderQuery"]
