"""The sample logistics provider: shipments and tracking events, snake_case JSON, HTTP Basic auth.

Shapes, limits and errors are those of docs/sample-systems.md: times are epoch seconds, orders are
referenced as `SO-<order number>`. Data comes from a `World`; booking and cancelling shipments change it
until `/admin/reset`. Both writes honour an `Idempotency-Key`.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo.faults import Faults, csv_param, int_param, json_response, same_secret, sample_app, text_param
from demo.idempotency import Replays
from demo.world import World

BATCH_LIMIT = 200
PAGE_LIMIT = 200
DEFAULT_PAGE = 50
MAX_OFFSET = 10_000_000
BOOKED = "BK"  # booked, not collected yet: the only status a booking can be cancelled in
BOOKING_ETA_S = 3 * 24 * 3600  # a new booking is promised for three days ahead
_ORDER_REF = re.compile(r"SO-[0-9]{1,12}")

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


def _new_booking(body: Any) -> tuple[str, str] | str:
    """(order_ref, carrier_code) of a booking request, or what is wrong with its shape."""
    if not isinstance(body, dict):
        return "send a JSON object {order_ref, carrier_code}"
    if unknown := sorted(set(body) - {"order_ref", "carrier_code"}):
        return f"unknown fields: {', '.join(unknown)}"
    ref, carrier = body.get("order_ref"), body.get("carrier_code")
    if not isinstance(ref, str) or not _ORDER_REF.fullmatch(ref):
        return "order_ref must be SO-<order number>"
    if not isinstance(carrier, str) or not carrier:
        return "carrier_code must be a carrier's vendor number"
    return ref, carrier


class LogisticsData:
    """The provider's shipments as the API serves them, indexed by order, tracking number and carrier."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.carriers = frozenset(v.number for v in world.carriers)
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
            self._index(shipment)
        # World tracking numbers are two carrier digits and twelve hex digits. New ones count on from past
        # the highest world serial, so they are deterministic and can never take a world shipment's number.
        self.next_serial = 1 + max((int(t[2:], 16) for t in self.by_tracking), default=0)

    def _index(self, shipment: dict[str, Any]) -> None:
        self.by_tracking[shipment["tracking_number"]] = shipment
        self.by_order.setdefault(shipment["order_ref"], []).append(shipment)
        self.by_carrier.setdefault(shipment["carrier_code"], []).append(shipment)

    def book(self, ref: str, carrier: str, now: float) -> dict[str, Any]:
        """A new shipment booked with `carrier` for the order: status BK, no scans yet."""
        tracking = f"{carrier[-2:]}{self.next_serial:012X}"
        self.next_serial += 1
        shipment: dict[str, Any] = {"tracking_number": tracking, "carrier_code": carrier, "order_ref": ref,
                                    "status_code": BOOKED, "eta": int(now) + BOOKING_ETA_S, "events": []}
        self._index(shipment)
        return shipment

    def cancel(self, shipment: dict[str, Any]) -> None:
        """Forget a booking everywhere: a cancelled booking is not listed by any read."""
        del self.by_tracking[shipment["tracking_number"]]
        for index, key in ((self.by_order, shipment["order_ref"]), (self.by_carrier, shipment["carrier_code"])):
            remaining = [s for s in index[key] if s is not shipment]
            if remaining:
                index[key] = remaining
            else:
                del index[key]


def create_app(world: World, *, username: str, password: str, admin_key: str,
               faults: Faults | None = None) -> Starlette:
    """The logistics API as an ASGI app; every `/api` call needs HTTP Basic `username:password`."""
    faults = faults if faults is not None else Faults()
    data = LogisticsData(world)
    replays = Replays()  # writes honour Idempotency-Key: a retry is answered, not applied again

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

    async def shipments_or_booking(request: Request) -> Response:
        if request.method == "POST":
            return await replays.once(request, lambda: book(request))
        return await shipments(request)

    async def book(request: Request) -> Response:
        try:
            wanted = _new_booking(orjson.loads(await request.body()))
        except orjson.JSONDecodeError:
            return json_response({"error": "body is not JSON"}, 400)
        if isinstance(wanted, str):
            return json_response({"error": wanted}, 422)
        ref, carrier = wanted
        if carrier not in data.carriers:
            return json_response({"error": f"{carrier} is not a carrier"}, 422)
        # Cancelled bookings are no longer indexed: anything listed for the order is live.
        taken = next((s for s in data.by_order.get(ref, ()) if s["carrier_code"] == carrier), None)
        if taken is not None:
            return json_response({"error": f"{ref} already has shipment {taken['tracking_number']} with {carrier}"},
                                 409)
        return json_response(data.book(ref, carrier, time.time()), 201)

    async def cancel(request: Request) -> Response:
        return await replays.once(request, lambda: cancel_now(request.path_params["tracking_number"]))

    async def cancel_now(tracking_number: str) -> Response:
        shipment = data.by_tracking.get(tracking_number)
        if shipment is None:
            return json_response({"error": "not found"}, 404)
        if shipment["status_code"] != BOOKED:
            return json_response({"error": f"shipment {tracking_number} is under way and cannot be cancelled"}, 409)
        data.cancel(shipment)
        return json_response({"tracking_number": tracking_number, "cancelled": True})

    def reset() -> None:
        data.load()
        replays.clear()

    routes = [
        Route("/api/shipments", guarded(shipments_or_booking), methods=["GET", "POST"]),
        Route("/api/shipments/{tracking_number}", guarded(cancel), methods=["DELETE"]),
    ]
    return sample_app(routes, faults=faults, admin_key=admin_key, reset=reset)
