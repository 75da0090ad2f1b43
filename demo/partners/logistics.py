"""The sample logistics provider: shipments and tracking events, snake_case JSON, HTTP Basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo.faults import FaultMiddleware, Faults, admin_routes, csv_param, int_param, json_response
from demo.world import World

BATCH_LIMIT = 200
PAGE_LIMIT = 200
ORDER_REF = "SO-{}"


class LogisticsData:
    def __init__(self, world: World) -> None:
        self.world = world
        self.load()

    def load(self) -> None:
        self.shipments: dict[str, dict[str, Any]] = {}
        self.by_ref: dict[str, list[dict[str, Any]]] = {}
        for s in self.world.shipments:
            shipment: dict[str, Any] = {
                "tracking_number": s.tracking_number, "carrier_code": s.carrier,
                "order_ref": ORDER_REF.format(s.order), "status_code": s.status, "eta": int(s.eta.timestamp()),
                "events": [{"ts": int(e.at.timestamp()), "code": e.code, "location": e.location} for e in s.events],
            }
            self.shipments[s.tracking_number] = shipment
            self.by_ref.setdefault(shipment["order_ref"], []).append(shipment)


def create_app(world: World, *, username: str, password: str, admin_key: str,
               faults: Faults | None = None) -> Starlette:
    faults = faults or Faults()
    data = LogisticsData(world)

    def denied(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = secret = ""
            if hmac.compare_digest(user, username) and hmac.compare_digest(secret, password):
                return None
        return json_response({"error": "unauthorized"}, 401, {"WWW-Authenticate": 'Basic realm="shipments"'})

    async def shipments(request: Request) -> Response:
        if answer := denied(request):
            return answer
        if "order_refs" in request.query_params:
            refs = csv_param(request, "order_refs", BATCH_LIMIT)
            if isinstance(refs, Response):
                return refs
            return json_response({"shipments": [s for r in dict.fromkeys(refs) for s in data.by_ref.get(r, [])]})
        if "tracking_numbers" in request.query_params:
            numbers = csv_param(request, "tracking_numbers", BATCH_LIMIT)
            if isinstance(numbers, Response):
                return numbers
            return json_response({"shipments": [data.shipments[n] for n in dict.fromkeys(numbers)
                                                if n in data.shipments]})
        carrier = request.query_params.get("carrier")
        if not carrier:
            return json_response({"error": "give order_refs, tracking_numbers or carrier"}, 400)
        limit = int_param(request, "limit", 50, PAGE_LIMIT)
        if isinstance(limit, Response):
            return limit
        raw_offset = request.query_params.get("offset", "0")
        if not raw_offset.isdigit():
            return json_response({"error": "offset must be a whole number"}, 400)
        offset = int(raw_offset)
        matching = [s for s in data.shipments.values() if s["carrier_code"] == carrier]
        return json_response({"shipments": matching[offset: offset + limit], "total": len(matching)})

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    routes = [
        Route("/api/shipments", shipments, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        *admin_routes(faults, admin_key, data.load),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, faults=faults)])
