"""The sample logistics provider: shipments and tracking events, snake_case JSON, HTTP Basic auth.

Shapes, limits and errors are those of docs/sample-systems.md: times are epoch seconds, orders are
referenced as `SO-<order number>`. Data comes from a `World` and is read-only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo.faults import Faults, csv_param, int_param, json_response, same_secret, sample_app, text_param
from demo.world import World

BATCH_LIMIT = 200
PAGE_LIMIT = 200
DEFAULT_PAGE = 50
MAX_OFFSET = 10_000_000

Handler = Callable[[Request], Awaitable[Response]]


def order_ref(order_number: int) -> str:
    """How the provider names one of our sales orders."""
    return f"SO-{order_number}"


def basic_credentials(header: bytes) -> tuple[bytes, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header value, None when it is not one."""
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


class LogisticsData:
    """The provider's shipments as the API serves them, indexed by order, tracking number and carrier."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.load()

    def load(self) -> None:
        """(Re)build every index from the world: at start and on `/admin/reset`."""
        self.by_tracking: dict[str, dict[str, Any]] = {}
        self.by_order: dict[str, list[dict[str, Any]]] = {}
        self.by_carrier: dict[str, list[dict[str, Any]]] = {}
        for s in self.world.shipments:
            shipment: dict[str, Any] = {
                "tracking_number": s.tracking_number, "carrier_code": s.carrier, "order_ref": order_ref(s.order),
                "status_code": s.status, "eta": int(s.eta.timestamp()),
                "events": [{"ts": int(e.at.timestamp()), "code": e.code, "location": e.location} for e in s.events],
            }
            self.by_tracking[s.tracking_number] = shipment
            self.by_order.setdefault(shipment["order_ref"], []).append(shipment)
            self.by_carrier.setdefault(s.carrier, []).append(shipment)


def create_app(world: World, *, username: str, password: str, admin_key: str,
               faults: Faults | None = None) -> Starlette:
    """The logistics API as an ASGI app; every `/api` call needs HTTP Basic `username:password`."""
    faults = faults if faults is not None else Faults()
    data = LogisticsData(world)

    def guarded(handler: Handler) -> Handler:
        async def call(request: Request) -> Response:
            header = next((v for k, v in request.scope["headers"] if k == b"authorization"), b"")
            given = basic_credentials(header)
            # `&`, not `and`: both comparisons always run, so timing does not tell which one failed.
            if given is None or not (same_secret(given[0], username) & same_secret(given[1], password)):
                return json_response({"error": "unauthorized"}, 401, {"WWW-Authenticate": 'Basic realm="shipments"'})
            return await handler(request)

        return call

    async def shipments(request: Request) -> Response:
        if "order_refs" in request.query_params:
            refs = csv_param(request, "order_refs", BATCH_LIMIT)
            if isinstance(refs, Response):
                return refs
            return json_response({"shipments": [s for r in refs for s in data.by_order.get(r, ())]})
        if "tracking_numbers" in request.query_params:
            numbers = csv_param(request, "tracking_numbers", BATCH_LIMIT)
            if isinstance(numbers, Response):
                return numbers
            return json_response({"shipments": [data.by_tracking[n] for n in numbers if n in data.by_tracking]})
        carrier = text_param(request, "carrier")
        if carrier is None:
            return json_response({"error": "give order_refs, tracking_numbers or carrier"}, 400)
        limit = int_param(request, "limit", DEFAULT_PAGE, PAGE_LIMIT)
        if isinstance(limit, Response):
            return limit
        offset = int_param(request, "offset", 0, MAX_OFFSET, minimum=0)
        if isinstance(offset, Response):
            return offset
        carried = data.by_carrier.get(carrier, [])
        return json_response({"shipments": carried[offset: offset + limit], "total": len(carried)})

    routes = [Route("/api/shipments", guarded(shipments), methods=["GET"])]
    return sample_app(routes, faults=faults, admin_key=admin_key, reset=data.load)
