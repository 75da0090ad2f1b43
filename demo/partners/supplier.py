"""The sample supplier portal: catalogue offers and purchase orders, camelCase JSON, API-key auth."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo.faults import FaultMiddleware, Faults, admin_routes, csv_param, int_param, json_response
from demo.world import PO_STATUSES, World

BATCH_LIMIT = 200
PAGE_LIMIT = 200


class SupplierData:
    def __init__(self, world: World) -> None:
        self.world = world
        self.load()

    def load(self) -> None:
        self.offers: dict[str, list[dict[str, Any]]] = {}
        for o in self.world.offers:
            self.offers.setdefault(o.item, []).append({
                "supplierCode": o.supplier, "sku": o.item, "unitPrice": o.unit_price, "currency": o.currency,
                "leadTimeDays": o.lead_time_days, "availableQty": o.available_qty,
                "validUntil": o.valid_until.isoformat()})
        self.pos: dict[str, dict[str, Any]] = {
            po.id: {"poNumber": po.id, "supplierCode": po.supplier, "status": po.status,
                    "createdOn": po.created.isoformat(), "expectedOn": po.expected.isoformat(),
                    "currency": po.currency,
                    "lines": [{"sku": line.item, "qty": line.quantity, "unitPrice": line.unit_price}
                              for line in po.lines]}
            for po in self.world.purchase_orders}
        # Newest first, as the portal lists them.
        self.po_order = sorted(self.pos.values(), key=lambda p: (p["createdOn"], p["poNumber"]), reverse=True)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(raw: str | None) -> int | None:
    if raw is None:
        return 0
    try:
        value = base64.urlsafe_b64decode(raw.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return int(value) if value.isdigit() else None


def _page(request: Request, key: str, matching: list[dict[str, Any]]) -> Response:
    """One page of `matching` per the request's `limit` and `cursor` (an opaque offset)."""
    limit = int_param(request, "limit", 50, PAGE_LIMIT)
    if isinstance(limit, Response):
        return limit
    start = _offset(request.query_params.get("cursor"))
    if start is None:
        return json_response({"error": "bad cursor"}, 400)
    more = start + limit < len(matching)
    return json_response({key: matching[start: start + limit], "next": _cursor(start + limit) if more else None})


def create_app(world: World, *, api_key: str, admin_key: str, faults: Faults | None = None) -> Starlette:
    faults = faults or Faults()
    data = SupplierData(world)

    def denied(request: Request) -> Response | None:
        if hmac.compare_digest(request.headers.get("x-api-key", ""), api_key):
            return None
        return json_response({"error": "missing or wrong X-Api-Key"}, 401)

    async def offers(request: Request) -> Response:
        if answer := denied(request):
            return answer
        if "sku" in request.query_params:
            skus = csv_param(request, "sku", BATCH_LIMIT)
            if isinstance(skus, Response):
                return skus
            return json_response({"offers": [o for s in dict.fromkeys(skus) for o in data.offers.get(s, [])]})
        supplier = request.query_params.get("supplier")
        if not supplier:
            return json_response({"error": "give sku or supplier"}, 400)
        matching = [o for item in sorted(data.offers) for o in data.offers[item] if o["supplierCode"] == supplier]
        return _page(request, "offers", matching)

    async def purchase_orders(request: Request) -> Response:
        if answer := denied(request):
            return answer
        if "ids" in request.query_params:
            ids = csv_param(request, "ids", BATCH_LIMIT)
            if isinstance(ids, Response):
                return ids
            return json_response({"purchaseOrders": [data.pos[i] for i in dict.fromkeys(ids) if i in data.pos]})
        if "sku" in request.query_params:
            skus = csv_param(request, "sku", BATCH_LIMIT)
            if isinstance(skus, Response):
                return skus
            wanted = set(skus)
            return json_response({"purchaseOrders": [po for po in data.po_order
                                                     if any(line["sku"] in wanted for line in po["lines"])]})
        status = request.query_params.get("status")
        if status is not None and status not in PO_STATUSES:
            return json_response({"error": f"status must be one of {', '.join(PO_STATUSES)}"}, 400)
        supplier = request.query_params.get("supplier")
        matching = [po for po in data.po_order if (supplier is None or po["supplierCode"] == supplier)
                    and (status is None or po["status"] == status)]
        return _page(request, "purchaseOrders", matching)

    async def confirm(request: Request) -> Response:
        if answer := denied(request):
            return answer
        po = data.pos.get(request.path_params["id"])
        if po is None:
            return json_response({"error": "not found"}, 404)
        if po["status"] in ("CANCELLED", "RECEIVED"):
            return json_response({"error": f"a {po['status']} order cannot be confirmed"}, 409)
        if po["status"] == "SENT":
            po["status"] = "CONFIRMED"
        return json_response(po)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    routes = [
        Route("/v2/offers", offers, methods=["GET"]),
        Route("/v2/purchase-orders", purchase_orders, methods=["GET"]),
        Route("/v2/purchase-orders/{id}/confirm", confirm, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *admin_routes(faults, admin_key, data.load),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, faults=faults)])
