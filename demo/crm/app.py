"""The sample CRM: customers, account managers and interactions over REST/JSON, OAuth2 client credentials.

Shapes, limits and errors are those of docs/sample-systems.md. Data comes from a `World` and lives in
memory, indexed once at start; writes change it until `/admin/reset`.
"""

from __future__ import annotations

import bisect
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from demo.world import INTERACTION_KINDS as WORLD_KINDS
from demo.world import SEGMENTS, World

BATCH_LIMIT = 100
PAGE_LIMIT = 500
DEFAULT_PAGE = 50
TOKEN_LIFETIME_S = 3600
SUBJECT_MAX = 200
PATCHABLE = ("email", "phone", "segment")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9().\- ]{7,25}")
INTERACTION_KINDS = (*WORLD_KINDS, "order")  # the world has none; the gateway logs the orders it places

Handler = Callable[[Request], Awaitable[Response]]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class TokenBucket:
    """`rate` requests per second on average, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> float:
        """0 when a request may pass (and counts it), else the seconds until one may."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class IssuedToken:
    client_id: str
    expires_at: float  # time.monotonic() seconds


class AccessTokens:
    """Bearer tokens issued by the token endpoint, in memory, each with its client and expiry."""

    def __init__(self) -> None:
        self._issued: dict[str, IssuedToken] = {}

    def issue(self, client_id: str, now: float) -> str:
        # Drop expired tokens here, so a client that fetches a token per request cannot grow memory forever.
        self._issued = {t: issued for t, issued in self._issued.items() if issued.expires_at > now}
        token = secrets.token_urlsafe(32)
        self._issued[token] = IssuedToken(client_id, now + TOKEN_LIFETIME_S)
        return token

    def client_of(self, token: str, now: float) -> str | None:
        """The client a live token was issued to; None for unknown and expired tokens."""
        issued = self._issued.get(token)
        return issued.client_id if issued is not None and issued.expires_at > now else None


def _interaction_key(interaction: dict[str, Any]) -> tuple[str, str]:
    return interaction["occurredAt"], interaction["id"]


class CrmData:
    """The CRM's records as the API serves them, indexed for O(1) reads and keyed pages."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.load()

    def load(self) -> None:
        """(Re)build every index from the world: at start and on `/admin/reset`."""
        managers = [{"id": m.id, "name": m.name, "email": m.email} for m in self.world.account_managers]
        self.customers: dict[str, dict[str, Any]] = {}
        self.agent_of: dict[str, str] = {}
        for c in self.world.customers:
            created = _iso(c.created_at)
            self.customers[c.crm_id] = {
                "id": c.crm_id, "erpCustomerNumber": c.crm_erp_number, "name": c.name,
                "contact": {"firstName": c.contact_first, "lastName": c.contact_last}, "email": c.email,
                "phone": c.crm_phone, "segment": c.segment, "accountManager": dict(managers[c.account_manager]),
                "createdAt": created, "updatedAt": created,
            }
            self.agent_of[c.crm_id] = managers[c.account_manager]["name"]
        # PATCH cannot change a name, so this order (and every cursor into it) holds until reset.
        self.ordered = sorted(self.customers.values(), key=lambda c: (c["name"], c["id"]))
        self.keys = [(c["name"], c["id"]) for c in self.ordered]
        self.folded = [c["name"].casefold() for c in self.ordered]
        self.interactions: dict[str, list[dict[str, Any]]] = {
            crm_id: [{"id": i.id, "customerId": i.customer, "kind": i.kind, "occurredAt": _iso(i.occurred_at),
                      "subject": i.subject, "agent": i.agent} for i in items]
            for crm_id, items in self.world.interactions.items()}

    def customer_page(self, text: str | None, segment: str | None, after: tuple[str, ...] | None,
                      limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Customers by name then id after the cursor key, filtered; with the next page's cursor."""
        folded = text.casefold() if text else None
        start = bisect.bisect_right(self.keys, after) if after else 0
        page: list[dict[str, Any]] = []
        for index in range(start, len(self.ordered)):
            c = self.ordered[index]
            if (folded and folded not in self.folded[index]) or (segment and c["segment"] != segment):
                continue
            if len(page) == limit:
                return page, encode_cursor((page[-1]["name"], page[-1]["id"]))
            page.append(c)
        return page, None

    def interaction_page(self, crm_id: str, kind: str | None, after: tuple[str, ...] | None,
                         limit: int) -> dict[str, Any]:
        """A customer's interactions newest first, after the cursor key: `{"data", "nextCursor"}`."""
        items = [i for i in self.interactions.get(crm_id, ())
                 if (kind is None or i["kind"] == kind) and (after is None or _interaction_key(i) < after)]
        more = len(items) > limit
        page = items[:limit]
        return {"data": page, "nextCursor": encode_cursor(_interaction_key(page[-1])) if more else None}

    def add_interaction(self, crm_id: str, kind: str, subject: str, agent: str | None) -> dict[str, Any]:
        created = {"id": str(uuid.uuid4()), "customerId": crm_id, "kind": kind,
                   "occurredAt": _iso(datetime.now(UTC)), "subject": subject,
                   "agent": agent or self.agent_of[crm_id]}
        items = self.interactions.setdefault(crm_id, [])
        items.append(created)
        # Sorted, not prepended: the world's data sits around its own "today", which the wall clock may not be.
        items.sort(key=_interaction_key, reverse=True)
        return created


def _customer_changes(body: Any) -> dict[str, Any] | str:
    """The validated fields of a PATCH body, or what is wrong with it."""
    if not isinstance(body, dict) or not body:
        return f"send a JSON object with some of: {', '.join(PATCHABLE)}"
    if unknown := sorted(set(body) - set(PATCHABLE)):
        return f"cannot change: {', '.join(unknown)}"
    if "email" in body and not (isinstance(body["email"], str) and len(body["email"]) <= 254
                                and _EMAIL.fullmatch(body["email"])):
        return "email must be an e-mail address"
    phone = body.get("phone")
    if phone is not None and not (isinstance(phone, str) and _PHONE.fullmatch(phone)
                                  and sum(ch.isdigit() for ch in phone) >= 7):
        return "phone must be a phone number or null"
    if "segment" in body and body["segment"] not in SEGMENTS:
        return f"segment must be one of {', '.join(SEGMENTS)}"
    return dict(body)


def _new_interaction(body: Any) -> tuple[str, str, str | None] | str:
    """(kind, subject, agent) of a POST body, or what is wrong with it."""
    if not isinstance(body, dict):
        return "send a JSON object {kind, subject}"
    if unknown := sorted(set(body) - {"kind", "subject", "agent"}):
        return f"unknown fields: {', '.join(unknown)}"
    if body.get("kind") not in INTERACTION_KINDS:
        return f"kind must be one of {', '.join(INTERACTION_KINDS)}"
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > SUBJECT_MAX:
        return f"subject must be text of 1 to {SUBJECT_MAX} characters"
    agent = body.get("agent")
    if agent is not None and (not isinstance(agent, str) or not agent.strip()):
        return "agent must be a name"
    return body["kind"], subject.strip(), agent.strip() if agent else None


async def _json_body(request: Request) -> Any:
    """The decoded body; ValueError when it is not JSON."""
    return orjson.loads(await request.body())


def create_app(world: World, *, client_id: str, client_secret: str, admin_key: str, faults: Faults | None = None,
               rate_per_second: float = 200, burst: int = 400) -> Starlette:
    """The CRM as an ASGI app; `rate_per_second` and `burst` shape each client's token bucket."""
    faults = faults if faults is not None else Faults()
    data = CrmData(world)
    replays = Replays()  # writes honour Idempotency-Key: a retry is answered, not applied again
    tokens = AccessTokens()
    buckets: dict[str, TokenBucket] = {}

    def guarded(handler: Handler) -> Handler:
        """Bearer token required (401), then the client's token bucket (429 with Retry-After)."""

        async def call(request: Request) -> Response:
            now = time.monotonic()
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            client = tokens.client_of(token.strip(), now) if scheme.lower() == "bearer" else None
            if client is None:
                return json_response({"error": "invalid_token"}, 401, {"WWW-Authenticate": 'Bearer realm="crm"'})
            bucket = buckets.get(client)
            if bucket is None:
                bucket = buckets[client] = TokenBucket(rate_per_second, burst, stamp=now)
            if wait := bucket.take(now):
                return json_response({"error": "rate_limited"}, 429, {"Retry-After": str(max(1, math.ceil(wait)))})
            return await handler(request)

        return call

    async def token(request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        given_id, given_secret = form.get("client_id"), form.get("client_secret")
        # `&`, not `and`: both comparisons always run, so timing does not tell which one failed.
        if not (isinstance(given_id, str) and isinstance(given_secret, str)
                and same_secret(given_id, client_id) & same_secret(given_secret, client_secret)):
            return json_response({"error": "invalid_client"}, 401)
        access = tokens.issue(given_id, time.monotonic())
        return json_response({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S},
                             headers={"Cache-Control": "no-store"})

    async def customers(request: Request) -> Response:
        if "ids" in request.query_params:
            ids = csv_param(request, "ids", BATCH_LIMIT)
            if isinstance(ids, Response):
                return ids
            return json_response({"data": [data.customers[i] for i in ids if i in data.customers]})
        limit = int_param(request, "limit", DEFAULT_PAGE, PAGE_LIMIT)
        if isinstance(limit, Response):
            return limit
        segment = text_param(request, "segment")
        if segment is not None and segment not in SEGMENTS:
            return json_response({"error": f"segment must be one of {', '.join(SEGMENTS)}"}, 400)
        after = cursor_param(request, 2)
        if isinstance(after, Response):
            return after
        page, next_cursor = data.customer_page(text_param(request, "q"), segment, after, limit)
        return json_response({"data": page, "nextCursor": next_cursor})

    async def customer(request: Request) -> Response:
        found = data.customers.get(request.path_params["id"])
        if found is None:
            return json_response({"error": "not_found"}, 404)
        if request.method == "GET":
            return json_response(found)
        return await replays.once(request, lambda: change_customer(request, found))

    async def change_customer(request: Request, found: dict[str, Any]) -> Response:
        try:
            changes = _customer_changes(await _json_body(request))
        except ValueError:
            return json_response({"error": "body is not JSON"}, 400)
        if isinstance(changes, str):
            return json_response({"error": changes}, 422)
        found.update(changes, updatedAt=_iso(datetime.now(UTC)))
        return json_response(found)

    def page_params(request: Request) -> tuple[str | None, int] | Response:
        kind = text_param(request, "kind")
        if kind is not None and kind not in INTERACTION_KINDS:
            return json_response({"error": f"kind must be one of {', '.join(INTERACTION_KINDS)}"}, 400)
        limit = int_param(request, "limit", DEFAULT_PAGE, PAGE_LIMIT)
        return limit if isinstance(limit, Response) else (kind, limit)

    async def interactions_of(request: Request) -> Response:
        crm_id = request.path_params["id"]
        if crm_id not in data.customers:
            return json_response({"error": "not_found"}, 404)
        if request.method == "POST":
            return await replays.once(request, lambda: add_interaction(request, crm_id))
        params = page_params(request)
        if isinstance(params, Response):
            return params
        after = cursor_param(request, 2)
        if isinstance(after, Response):
            return after
        return json_response(data.interaction_page(crm_id, params[0], after, params[1]))

    async def add_interaction(request: Request, crm_id: str) -> Response:
        try:
            wanted = _new_interaction(await _json_body(request))
        except ValueError:
            return json_response({"error": "body is not JSON"}, 400)
        if isinstance(wanted, str):
            return json_response({"error": wanted}, 422)
        return json_response(data.add_interaction(crm_id, *wanted), 201)

    async def interactions_batch(request: Request) -> Response:
        ids = csv_param(request, "customerIds", BATCH_LIMIT)
        if isinstance(ids, Response):
            return ids
        params = page_params(request)
        if isinstance(params, Response):
            return params
        kind, limit = params
        return json_response({"results": [{"customerId": crm_id, **data.interaction_page(crm_id, kind, None, limit)}
                                          for crm_id in ids if crm_id in data.customers]})

    def reset() -> None:
        data.load()
        replays.clear()
        buckets.clear()  # issued tokens stay valid: a reset must not log the gateway out

    routes = [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/api/v1/customers", guarded(customers), methods=["GET"]),
        Route("/api/v1/customers/{id}", guarded(customer), methods=["GET", "PATCH"]),
        Route("/api/v1/customers/{id}/interactions", guarded(interactions_of), methods=["GET", "POST"]),
        Route("/api/v1/interactions", guarded(interactions_batch), methods=["GET"]),
    ]
    return sample_app(routes, faults=faults, admin_key=admin_key, reset=reset)
