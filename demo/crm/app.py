"""The sample CRM: customers, account managers and interactions over REST/JSON, OAuth2 client credentials.

Shapes, limits and errors are those of docs/sample-systems.md. Data comes from a `World` and lives in
memory; writes change it until `/admin/reset`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo.faults import FaultMiddleware, Faults, admin_routes, csv_param, int_param, json_response
from demo.world import INTERACTION_KINDS, SEGMENTS, World

BATCH_LIMIT = 100
PAGE_LIMIT = 500
TOKEN_LIFETIME_S = 3600


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode()


def _uncursor(raw: str, size: int) -> list[str] | None:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(parts, list) or len(parts) != size or not all(isinstance(p, str) for p in parts):
        return None
    return parts


@dataclass
class Bucket:
    """A token bucket: `rate` requests per second, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = -1
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when a request may pass, else the seconds until one may."""
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class CrmData:
    """The CRM's records, indexed for the API's reads."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.load()

    def load(self) -> None:
        managers = self.world.account_managers
        self.customers: dict[str, dict[str, Any]] = {}
        for c in self.world.customers:
            created = _iso(c.created_at)
            manager = managers[c.account_manager]
            self.customers[c.crm_id] = {
                "id": c.crm_id, "erpCustomerNumber": c.crm_erp_number, "name": c.name,
                "contact": {"firstName": c.contact_first, "lastName": c.contact_last}, "email": c.email,
                "phone": c.crm_phone, "segment": c.segment,
                "accountManager": {"id": manager.id, "name": manager.name, "email": manager.email},
                "createdAt": created, "updatedAt": created,
            }
        self.order = sorted(self.customers.values(), key=lambda c: (c["name"], c["id"]))
        self.interactions: dict[str, list[dict[str, Any]]] = {
            crm_id: [{"id": i.id, "customerId": i.customer, "kind": i.kind, "occurredAt": _iso(i.occurred_at),
                      "subject": i.subject, "agent": i.agent} for i in items]
            for crm_id, items in self.world.interactions.items()}


def create_app(world: World, *, client_id: str, client_secret: str, admin_key: str, faults: Faults | None = None,
               rate_per_second: float = 200, burst: int = 400) -> Starlette:
    faults = faults or Faults()
    data = CrmData(world)
    tokens: dict[str, tuple[str, float]] = {}  # access token -> (client id, expiry)
    buckets: dict[str, Bucket] = {}

    def authorised(request: Request) -> str | Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        found = tokens.get(token)
        if not token or found is None or found[1] < time.monotonic():
            return json_response({"error": "invalid_token"}, 401, {"WWW-Authenticate": "Bearer"})
        bucket = buckets.setdefault(found[0], Bucket(rate_per_second, burst))
        wait = bucket.take()
        if wait:
            return json_response({"error": "rate_limited"}, 429, {"Retry-After": str(max(1, int(wait + 0.999)))})
        return found[0]

    async def token(request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        given_id, given_secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if not (hmac.compare_digest(given_id, client_id) and hmac.compare_digest(given_secret, client_secret)):
            return json_response({"error": "invalid_client"}, 401)
        access = secrets.token_urlsafe(32)
        tokens[access] = (given_id, time.monotonic() + TOKEN_LIFETIME_S)
        return json_response({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S})

    async def customers(request: Request) -> Response:
        if isinstance(who := authorised(request), Response):
            return who
        if "ids" in request.query_params:
            ids = csv_param(request, "ids", BATCH_LIMIT)
            if isinstance(ids, Response):
                return ids
            return json_response({"data": [data.customers[i] for i in dict.fromkeys(ids) if i in data.customers]})
        limit = int_param(request, "limit", 50, PAGE_LIMIT)
        if isinstance(limit, Response):
            return limit
        q = request.query_params.get("q", "").strip().lower()
        segment = request.query_params.get("segment")
        if segment is not None and segment not in SEGMENTS:
            return json_response({"error": f"segment must be one of {', '.join(SEGMENTS)}"}, 400)
        after: tuple[str, str] | None = None
        if raw := request.query_params.get("cursor"):
            parts = _uncursor(raw, 2)
            if parts is None:
                return json_response({"error": "bad cursor"}, 400)
            after = (parts[0], parts[1])
        page: list[dict[str, Any]] = []
        more = False
        for c in data.order:
            if after is not None and (c["name"], c["id"]) <= after:
                continue
            if (q and q not in c["name"].lower()) or (segment and c["segment"] != segment):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(c)
        next_cursor = _cursor(page[-1]["name"], page[-1]["id"]) if more and page else None
        return json_response({"data": page, "nextCursor": next_cursor})

    async def customer(request: Request) -> Response:
        if isinstance(who := authorised(request), Response):
            return who
        found = data.customers.get(request.path_params["id"])
        if found is None:
            return json_response({"error": "not found"}, 404)
        if request.method == "GET":
            return json_response(found)
        try:
            changes = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"error": "body is not JSON"}, 400)
        allowed = {"email", "phone", "segment"}
        if not isinstance(changes, dict) or not changes or set(changes) - allowed:
            return json_response({"error": f"send an object with some of: {', '.join(sorted(allowed))}"}, 422)
        if "segment" in changes and changes["segment"] not in SEGMENTS:
            return json_response({"error": "unknown segment"}, 422)
        if any(not isinstance(v, str | None) for v in changes.values()):
            return json_response({"error": "values must be strings or null"}, 422)
        found.update(changes, updatedAt=_iso(datetime.now(UTC)))
        return json_response(found)

    def interaction_page(crm_id: str, request: Request, limit: int, cursor: str | None) -> dict[str, Any] | Response:
        kind = request.query_params.get("kind")
        if kind is not None and kind not in INTERACTION_KINDS:
            return json_response({"error": f"kind must be one of {', '.join(INTERACTION_KINDS)}"}, 400)
        after: tuple[str, str] | None = None
        if cursor:
            parts = _uncursor(cursor, 2)
            if parts is None:
                return json_response({"error": "bad cursor"}, 400)
            after = (parts[0], parts[1])
        items = [i for i in data.interactions.get(crm_id, []) if kind is None or i["kind"] == kind]
        if after is not None:
            items = [i for i in items if (i["occurredAt"], i["id"]) < after]
        page = items[:limit]
        more = len(items) > limit
        return {"data": page, "nextCursor": _cursor(page[-1]["occurredAt"], page[-1]["id"]) if more else None}

    async def interactions_of(request: Request) -> Response:
        if isinstance(who := authorised(request), Response):
            return who
        crm_id = request.path_params["id"]
        if crm_id not in data.customers:
            return json_response({"error": "not found"}, 404)
        if request.method == "POST":
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return json_response({"error": "body is not JSON"}, 400)
            if (not isinstance(body, dict) or body.get("kind") not in INTERACTION_KINDS
                    or not isinstance(body.get("subject"), str) or not body["subject"].strip()):
                return json_response({"error": "send {kind, subject}"}, 422)
            created = {"id": str(uuid.uuid4()), "customerId": crm_id, "kind": body["kind"],
                       "occurredAt": _iso(datetime.now(UTC)), "subject": body["subject"].strip(),
                       "agent": body.get("agent") if isinstance(body.get("agent"), str) else None}
            data.interactions.setdefault(crm_id, []).insert(0, created)
            return json_response(created, 201)
        limit = int_param(request, "limit", 20, PAGE_LIMIT)
        if isinstance(limit, Response):
            return limit
        page = interaction_page(crm_id, request, limit, request.query_params.get("cursor"))
        return page if isinstance(page, Response) else json_response(page)

    async def interactions_batch(request: Request) -> Response:
        if isinstance(who := authorised(request), Response):
            return who
        ids = csv_param(request, "customerIds", BATCH_LIMIT)
        if isinstance(ids, Response):
            return ids
        limit = int_param(request, "limit", 20, PAGE_LIMIT)
        if isinstance(limit, Response):
            return limit
        results = []
        for crm_id in dict.fromkeys(ids):
            if crm_id not in data.customers:
                continue
            page = interaction_page(crm_id, request, limit, None)
            if isinstance(page, Response):
                return page
            results.append({"customerId": crm_id, **page})
        return json_response({"results": results})

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    routes = [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/api/v1/customers", customers, methods=["GET"]),
        Route("/api/v1/customers/{id}", customer, methods=["GET", "PATCH"]),
        Route("/api/v1/customers/{id}/interactions", interactions_of, methods=["GET", "POST"]),
        Route("/api/v1/interactions", interactions_batch, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        *admin_routes(faults, admin_key, data.load),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, faults=faults)])
