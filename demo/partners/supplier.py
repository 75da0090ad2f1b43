"""The sample supplier portal: catalogue offers and purchase orders, camelCase JSON, API-key auth.

Shapes, limits and errors are those of docs/sample-systems.md: prices are decimal strings, dates
`YYYY-MM-DD`. Data comes from a `World`; confirming a purchase order changes it until `/admin/reset`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

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
from demo.world import PO_STATUSES, World

BATCH_LIMIT = 200
PAGE_LIMIT = 200
DEFAULT_PAGE = 50
UNCONFIRMABLE = ("CANCELLED", "RECEIVED")

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
        self.pos: dict[str, dict[str, Any]] = {
            po.id: {"poNumber": po.id, "supplierCode": po.supplier, "status": po.status,
                    "createdOn": po.created.isoformat(), "expectedOn": po.expected.isoformat(),
                    "currency": po.currency,
                    "lines": [{"sku": line.item, "qty": line.quantity, "unitPrice": line.unit_price}
                              for line in po.lines]}
            for po in self.world.purchase_orders}
        # Newest first, as the portal lists them; ISO dates sort as text.
        self.pos_newest_first = sorted(self.pos.values(), key=_po_key, reverse=True)
        self.pos_by_supplier: dict[str, list[dict[str, Any]]] = {}
        for po in self.pos_newest_first:
            self.pos_by_supplier.setdefault(po["supplierCode"], []).append(po)


def create_app(world: World, *, api_key: str, admin_key: str, faults: Faults | None = None) -> Starlette:
    """The supplier portal as an ASGI app; every `/v2` call needs `X-Api-Key: <api_key>`."""
    faults = faults if faults is not None else Faults()
    data = SupplierData(world)

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

    async def confirm(request: Request) -> Response:
        po = data.pos.get(request.path_params["id"])
        if po is None:
            return json_response({"error": "not found"}, 404)
        if po["status"] in UNCONFIRMABLE:
            return json_response({"error": f"a {po['status']} order cannot be confirmed"}, 409)
        # SENT becomes CONFIRMED; CONFIRMED and PARTIAL (deliveries under way) are confirmed already.
        if po["status"] == "SENT":
            po["status"] = "CONFIRMED"
        return json_response(po)

    routes = [
        Route("/v2/offers", guarded(offers), methods=["GET"]),
        Route("/v2/purchase-orders", guarded(purchase_orders), methods=["GET"]),
        Route("/v2/purchase-orders/{id}/confirm", guarded(confirm), methods=["POST"]),
    ]
    return sample_app(routes, faults=faults, admin_key=admin_key, reset=data.load)
