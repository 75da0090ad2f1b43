"""The sample supplier portal: catalogue offers and purchase orders, camelCase JSON, API-key auth.

Shapes, limits and errors are those of docs/sample-systems.md: prices are decimal strings, dates
`YYYY-MM-DD`. Data comes from a `World`; creating, confirming and receiving purchase orders change it
until `/admin/reset`. Every write honours an `Idempotency-Key`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo.faults import (
    Faults,
    csv_param,
    cursor_param,
    encode_cursor,
    int_param,
    json_response,
    same_secret,
    sample_app,
    text_param,
)
from demo.idempotency import Replays
from demo.world import PO_STATUSES, World

BATCH_LIMIT = 200
PAGE_LIMIT = 200
DEFAULT_PAGE = 50
UNCONFIRMABLE = ("CANCELLED", "RECEIVED")
CLOSED = UNCONFIRMABLE  # nothing more arrives for these either: receipts are refused
LINE_LIMIT = 200  # lines per purchase order or receipt
QTY_LIMIT = 1_000_000
DEFAULT_LEAD_DAYS = 14  # expectedOn of a new PO when none is given and no offer says better

Handler = Callable[[Request], Awaitable[Response]]
Key = tuple[str, ...]


def _offer_key(offer: dict[str, Any]) -> Key:
    return offer["sku"], offer["supplierCode"]


def _po_key(po: dict[str, Any]) -> Key:
    return po["createdOn"], po["poNumber"]


def _page(request: Request, name: str, ordered: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Key],
          *, newest_first: bool) -> Response:
    """`{name: [...], "next"}`: one page of `ordered` (sorted by `key`) after the request's cursor."""
    limit = int_param(request, "limit", DEFAULT_PAGE, PAGE_LIMIT)
    if isinstance(limit, Response):
        return limit
    after = cursor_param(request, 2)
    if isinstance(after, Response):
        return after
    page: list[dict[str, Any]] = []
    for record in ordered:
        if after is not None and (key(record) >= after if newest_first else key(record) <= after):
            continue
        if len(page) == limit:
            return json_response({name: page, "next": encode_cursor(key(page[-1]))})
        page.append(record)
    return json_response({name: page, "next": None})


def _iso_day(value: Any) -> date | None:
    """A `YYYY-MM-DD` date, None when `value` is not one."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _price(value: Any) -> str | None:
    """A unit price as the portal writes it (decimal string, two places), None when it is not one."""
    if not isinstance(value, str) or len(value) > 20:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    return f"{amount:.2f}" if amount.is_finite() and amount >= 0 else None


def _quantities(lines: Any, *, with_price: bool) -> list[dict[str, Any]] | str:
    """The `lines` of a new PO or a receipt, shape-checked: `[{"sku", "qty", "unitPrice"?}]`, or what is wrong."""
    if not isinstance(lines, list) or not lines:
        return "lines must be a non-empty list"
    if len(lines) > LINE_LIMIT:
        return f"at most {LINE_LIMIT} lines"
    allowed = {"sku", "qty", "unitPrice"} if with_price else {"sku", "qty"}
    seen: set[str] = set()
    out = []
    for n, line in enumerate(lines):
        if not isinstance(line, dict):
            return f"lines[{n}] must be an object"
        if unknown := sorted(set(line) - allowed):
            return f"lines[{n}]: unknown fields: {', '.join(unknown)}"
        sku, qty = line.get("sku"), line.get("qty")
        if not isinstance(sku, str) or not sku.strip():
            return f"lines[{n}].sku must be a SKU"
        if sku in seen:
            return f"lines[{n}]: {sku} is on more than one line"
        seen.add(sku)
        # bool is an int to Python, not to a JSON client: true is not a quantity.
        if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= QTY_LIMIT:
            return f"lines[{n}].qty must be a whole number from 1 to {QTY_LIMIT}"
        checked: dict[str, Any] = {"sku": sku, "qty": qty}
        if "unitPrice" in line:
            price = _price(line["unitPrice"])
            if price is None:
                return f"lines[{n}].unitPrice must be a decimal string such as \"12.50\""
            checked["unitPrice"] = price
        out.append(checked)
    return out


class SupplierData:
    """The portal's offers and purchase orders as the API serves them, indexed by what the API asks for."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.load()

    def load(self) -> None:
        """(Re)build every index from the world: at start and on `/admin/reset`."""
        self.offers_by_sku: dict[str, list[dict[str, Any]]] = {}
        self.offers_by_supplier: dict[str, list[dict[str, Any]]] = {}
        for o in self.world.offers:
            offer = {"supplierCode": o.supplier, "sku": o.item, "unitPrice": o.unit_price, "currency": o.currency,
                     "leadTimeDays": o.lead_time_days, "availableQty": o.available_qty,
                     "validUntil": o.valid_until.isoformat()}
            self.offers_by_sku.setdefault(o.item, []).append(offer)
            self.offers_by_supplier.setdefault(o.supplier, []).append(offer)
        for offers in self.offers_by_supplier.values():
            offers.sort(key=_offer_key)
        self.suppliers = frozenset(v.number for v in self.world.suppliers)
        # The world says nothing of deliveries: a RECEIVED order has all of it, any other none yet.
        self.pos: dict[str, dict[str, Any]] = {
            po.id: {"poNumber": po.id, "supplierCode": po.supplier, "status": po.status,
                    "createdOn": po.created.isoformat(), "expectedOn": po.expected.isoformat(),
                    "currency": po.currency,
                    "lines": [{"sku": line.item, "qty": line.quantity, "unitPrice": line.unit_price,
                               "receivedQty": line.quantity if po.status == "RECEIVED" else 0}
                              for line in po.lines]}
            for po in self.world.purchase_orders}
        # Newest first, as the portal lists them; ISO dates sort as text.
        self.pos_newest_first = sorted(self.pos.values(), key=_po_key, reverse=True)
        self.pos_by_supplier: dict[str, list[dict[str, Any]]] = {}
        for po in self.pos_newest_first:
            self.pos_by_supplier.setdefault(po["supplierCode"], []).append(po)
        # PO numbers run on across years (PO-2025-000100, PO-2026-000101): new ones continue the world's.
        self.next_serial = 1 + max((int(n.rsplit("-", 1)[1]) for n in self.pos), default=0)

    def offer(self, supplier: str, sku: str) -> dict[str, Any] | None:
        return next((o for o in self.offers_by_supplier.get(supplier, ()) if o["sku"] == sku), None)

    def add(self, supplier: str, lines: list[dict[str, Any]], expected: date | None,
            today: date) -> dict[str, Any] | str:
        """A new SENT purchase order, or why the supplier cannot take it (an unpriced SKU it does not offer)."""
        priced, lead_days = [], 0
        for line in lines:
            offer = self.offer(supplier, line["sku"])
            price = line.get("unitPrice")
            if price is None:
                if offer is None:
                    return f"{supplier} has no offer for {line['sku']}: give its unitPrice"
                price = offer["unitPrice"]
            lead_days = max(lead_days, DEFAULT_LEAD_DAYS if offer is None else offer["leadTimeDays"])
            priced.append({"sku": line["sku"], "qty": line["qty"], "unitPrice": price, "receivedQty": 0})
        number = f"PO-{today.year}-{self.next_serial:06d}"
        self.next_serial += 1
        po = {"poNumber": number, "supplierCode": supplier, "status": "SENT", "createdOn": today.isoformat(),
              "expectedOn": (expected or today + timedelta(days=lead_days)).isoformat(), "currency": "USD",
              "lines": priced}
        self.pos[number] = po
        key = _po_key(po)
        for listed in (self.pos_newest_first, self.pos_by_supplier.setdefault(supplier, [])):
            # Sorted in, not prepended: the wall clock's today may lie before the world's newest orders.
            # A new order is usually the newest, so the scan stops at once.
            at = next((i for i, other in enumerate(listed) if _po_key(other) < key), len(listed))
            listed.insert(at, po)
        return po


def create_app(world: World, *, api_key: str, admin_key: str, faults: Faults | None = None) -> Starlette:
    """The supplier portal as an ASGI app; every `/v2` call needs `X-Api-Key: <api_key>`."""
    faults = faults if faults is not None else Faults()
    data = SupplierData(world)
    replays = Replays()  # writes honour Idempotency-Key: a retry is answered, not applied again

    def guarded(handler: Handler) -> Handler:
        async def call(request: Request) -> Response:
            given = next((v for k, v in request.scope["headers"] if k == b"x-api-key"), b"")
            if not same_secret(given, api_key):
                return json_response({"error": "missing or wrong X-Api-Key"}, 401)
            return await handler(request)

        return call

    async def offers(request: Request) -> Response:
        if "sku" in request.query_params:
            skus = csv_param(request, "sku", BATCH_LIMIT)
            if isinstance(skus, Response):
                return skus
            return json_response({"offers": [o for s in skus for o in data.offers_by_sku.get(s, ())]})
        supplier = text_param(request, "supplier")
        if supplier is None:
            return json_response({"error": "give sku or supplier"}, 400)
        return _page(request, "offers", data.offers_by_supplier.get(supplier, ()), _offer_key, newest_first=False)

    async def purchase_orders(request: Request) -> Response:
        if "ids" in request.query_params:
            ids = csv_param(request, "ids", BATCH_LIMIT)
            if isinstance(ids, Response):
                return ids
            return json_response({"purchaseOrders": [data.pos[i] for i in ids if i in data.pos]})
        if "sku" in request.query_params:
            skus = csv_param(request, "sku", BATCH_LIMIT)
            if isinstance(skus, Response):
                return skus
            wanted = set(skus)
            return json_response({"purchaseOrders": [po for po in data.pos_newest_first
                                                     if any(line["sku"] in wanted for line in po["lines"])]})
        status = text_param(request, "status")
        if status is not None and status not in PO_STATUSES:
            return json_response({"error": f"status must be one of {', '.join(PO_STATUSES)}"}, 400)
        supplier = text_param(request, "supplier")
        listed = data.pos_newest_first if supplier is None else data.pos_by_supplier.get(supplier, [])
        matching = (po for po in listed if status is None or po["status"] == status)
        return _page(request, "purchaseOrders", matching, _po_key, newest_first=True)

    async def purchase_orders_or_new(request: Request) -> Response:
        if request.method == "POST":
            return await replays.once(request, lambda: create(request))
        return await purchase_orders(request)

    async def create(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict):
            return json_response({"error": "send a JSON object {supplierCode, lines, expectedOn?}"}, 422)
        if unknown := sorted(set(body) - {"supplierCode", "lines", "expectedOn"}):
            return json_response({"error": f"unknown fields: {', '.join(unknown)}"}, 422)
        supplier = body.get("supplierCode")
        if not isinstance(supplier, str) or supplier not in data.suppliers:
            return json_response({"error": "supplierCode must be a supplier's vendor number"}, 422)
        lines = _quantities(body.get("lines"), with_price=True)
        if isinstance(lines, str):
            return json_response({"error": lines}, 422)
        wanted_on = body.get("expectedOn")
        expected = None if wanted_on is None else _iso_day(wanted_on)
        if wanted_on is not None and expected is None:
            return json_response({"error": "expectedOn must be a date YYYY-MM-DD"}, 422)
        po = data.add(supplier, lines, expected, datetime.now(UTC).date())
        if isinstance(po, str):
            return json_response({"error": po}, 422)
        return json_response(po, 201)

    async def confirm(request: Request) -> Response:
        return await replays.once(request, lambda: confirm_now(request))

    async def confirm_now(request: Request) -> Response:
        po = data.pos.get(request.path_params["id"])
        if po is None:
            return json_response({"error": "not found"}, 404)
        # The body is optional: an empty one confirms as before, `{"expectedOn"}` also moves the date.
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return json_response({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict) or set(body) - {"expectedOn"}:
            return json_response({"error": 'send no body or a JSON object {"expectedOn": "YYYY-MM-DD"}'}, 400)
        expected = _iso_day(body["expectedOn"]) if "expectedOn" in body else None
        if "expectedOn" in body and expected is None:
            return json_response({"error": "expectedOn must be a date YYYY-MM-DD"}, 400)
        if po["status"] in UNCONFIRMABLE:
            return json_response({"error": f"a {po['status']} order cannot be confirmed"}, 409)
        # SENT becomes CONFIRMED; CONFIRMED and PARTIAL (deliveries under way) are confirmed already.
        if po["status"] == "SENT":
            po["status"] = "CONFIRMED"
        if expected is not None:
            po["expectedOn"] = expected.isoformat()
        return json_response(po)

    async def receipt(request: Request) -> Response:
        return await replays.once(request, lambda: receive(request))

    async def receive(request: Request) -> Response:
        po = data.pos.get(request.path_params["id"])
        if po is None:
            return json_response({"error": "not found"}, 404)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"error": "body is not JSON"}, 400)
        if po["status"] in CLOSED:
            return json_response({"error": f"a {po['status']} order takes no more goods"}, 409)
        if not isinstance(body, dict) or set(body) != {"lines"}:
            return json_response({"error": 'send a JSON object {"lines": [{"sku", "qty"}]}'}, 422)
        received = _quantities(body["lines"], with_price=False)
        if isinstance(received, str):
            return json_response({"error": received}, 422)
        on_po = {line["sku"]: line for line in po["lines"]}
        # All checked before any is applied: a refused receipt changes nothing.
        for line in received:
            ordered = on_po.get(line["sku"])
            if ordered is None:
                return json_response({"error": f"{line['sku']} is not on {po['poNumber']}"}, 422)
            still_open = ordered["qty"] - ordered["receivedQty"]
            if line["qty"] > still_open:
                return json_response({"error": f"{line['qty']} of {line['sku']} received, {still_open} still open"},
                                     422)
        for line in received:
            on_po[line["sku"]]["receivedQty"] += line["qty"]
        complete = all(line["receivedQty"] >= line["qty"] for line in po["lines"])
        po["status"] = "RECEIVED" if complete else "PARTIAL"
        return json_response(po)

    def reset() -> None:
        data.load()
        replays.clear()

    routes = [
        Route("/v2/offers", guarded(offers), methods=["GET"]),
        Route("/v2/purchase-orders", guarded(purchase_orders_or_new), methods=["GET", "POST"]),
        Route("/v2/purchase-orders/{id}/confirm", guarded(confirm), methods=["POST"]),
        Route("/v2/purchase-orders/{id}/receipts", guarded(receipt), methods=["POST"]),
    ]
    return sample_app(routes, faults=faults, admin_key=admin_key, reset=reset)
