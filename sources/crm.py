"""The CRM's REST API: customers (with their ERP cross-reference) and interactions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sources.base import Health, Slice, decode_cursor, encode_cursor
from sources.cache import Cache, NoCache
from sources.errors import UpstreamBadResponse
from sources.mapping import Field, RecordMap, code, email, iso_datetime, nested, optional, phone, strip, text
from sources.rest import RestTransport, items_under
from sources.values import InteractionKind, Segment

SEGMENTS = {"enterprise": Segment.ENTERPRISE, "mid_market": Segment.MID_MARKET, "smb": Segment.SMB,
            "public_sector": Segment.PUBLIC_SECTOR}
SEGMENT_CODES = {v: k for k, v in SEGMENTS.items()}
KINDS = {"call": InteractionKind.CALL, "email": InteractionKind.EMAIL, "ticket": InteractionKind.TICKET,
         "meeting": InteractionKind.MEETING}
KIND_CODES = {v: k for k, v in KINDS.items()}

BATCH_LIMIT = 100  # the CRM's maximum ids per batch read


@dataclass(frozen=True, slots=True)
class AccountManager:
    id: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True)
class CrmCustomer:
    id: str
    erp_number_raw: str | None  # as typed into the CRM; the crosswalk normalises it
    name: str
    contact_name: str | None
    email: str | None
    phone: str | None
    segment: Segment | None
    account_manager: AccountManager | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Interaction:
    id: str
    customer: str
    kind: InteractionKind
    at: datetime
    summary: str
    agent: str | None


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    first: int
    after: str | None = None
    text: str | None = None
    segment: Segment | None = None


@dataclass(frozen=True, slots=True)
class InteractionQuery:
    first: int
    after: str | None = None
    kind: InteractionKind | None = None


ACCOUNT_MANAGER_MAP = RecordMap(AccountManager, {
    "id": Field("id", text), "name": Field("name", text), "email": Field("email", email, default=None),
})


def _contact_name(first: str | None, last: str | None) -> str | None:
    parts = [p for p in (strip(first), strip(last)) if p]
    return " ".join(parts) or None


def customer_map(phone_region: str) -> RecordMap[CrmCustomer]:
    return RecordMap(CrmCustomer, {
        "id": Field("id", text),
        "erp_number_raw": Field("erpCustomerNumber", strip, default=None),
        "name": Field("name", text),
        "contact_name": Field(("contact.firstName", "contact.lastName"), _contact_name, default=None),
        "email": Field("email", email, default=None),
        "phone": Field("phone", phone(phone_region), default=None),
        "segment": Field("segment", optional(code(Segment, SEGMENTS)), default=None),
        "account_manager": Field("accountManager", optional(nested(ACCOUNT_MANAGER_MAP)), default=None),
        "updated_at": Field("updatedAt", optional(iso_datetime), default=None),
    })


INTERACTION_MAP = RecordMap(Interaction, {
    "id": Field("id", text),
    "customer": Field("customerId", text),
    "kind": Field("kind", code(InteractionKind, KINDS)),
    "at": Field("occurredAt", iso_datetime),
    "summary": Field("subject", text),
    "agent": Field("agent", strip, default=None),
})


def _page_cursor(after: str | None) -> tuple[str | None, int]:
    """Our cursors are (the CRM's page cursor, how many items of that page were already seen).

    The CRM only hands out a cursor per page; this gives every edge its own resumable cursor.
    """
    if after is None:
        return None, 0
    parts = decode_cursor(after)
    if len(parts) != 2 or not isinstance(parts[0], str) or not isinstance(parts[1], int) or parts[1] < 1:
        raise ValueError("malformed cursor")
    return parts[0] or None, parts[1]


class CrmSource:
    ENTITY_OPERATIONS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "customer": ("customers", "customer_page"),
        "interaction": ("interactions_of",),
    }

    def __init__(self, transport: RestTransport, *, phone_region: str = "US", page_limit: int = 500,
                 cache: Cache | None = None) -> None:
        self.name = transport.name
        self.transport = transport
        self.cache: Cache = cache or NoCache()
        self.customer_map = customer_map(phone_region)
        self.page_limit = page_limit

    async def customers(self, ids: Sequence[str], _: None = None) -> dict[str, CrmCustomer]:
        async def fetch(wanted: list[str]) -> dict[str, Any]:
            chunks = [wanted[i: i + BATCH_LIMIT] for i in range(0, len(wanted), BATCH_LIMIT)]
            bodies = await asyncio.gather(*(
                self.transport.get_json("customers", "/api/v1/customers", {"ids": ",".join(c)}, keys=len(c))
                for c in chunks))
            found: dict[str, Any] = {}
            for body in bodies:
                for raw in items_under(body, "data", self.name):
                    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                        raise UpstreamBadResponse(self.name, "customer without an id")
                    found[raw["id"]] = raw
            return found

        raw = await self.cache.many(self.name, "customers", ids, None, fetch)
        return {i: self.customer_map.apply(r, source=self.name) for i, r in raw.items()}

    async def _paged(self, operation: str, path: str, params: dict[str, Any], first: int,
                     after: str | None) -> Slice[Any]:
        """Read enough of the CRM's pages for `first` raw items after our cursor."""
        page_cursor, skip = _page_cursor(after)
        items: list[Any] = []
        cursors: list[str] = []
        while True:
            body = await self.transport.get_json(
                operation, path, {**params, "limit": min(self.page_limit, first + skip + 1), "cursor": page_cursor})
            raw_items = items_under(body, "data", self.name)[skip:]
            next_cursor = body.get("nextCursor")
            for offset, raw in enumerate(raw_items, start=skip + 1):
                items.append(raw)
                cursors.append(encode_cursor(page_cursor or "", offset))
            if len(items) > first or not next_cursor:
                break
            page_cursor, skip = str(next_cursor), 0
        return Slice(tuple(items[:first]), tuple(cursors[:first]), len(items) > first or bool(next_cursor))

    async def customer_page(self, query: CustomerQuery) -> Slice[CrmCustomer]:
        params: dict[str, Any] = {"q": query.text, "segment": SEGMENT_CODES[query.segment] if query.segment else None}
        _page_cursor(query.after)  # a bad cursor fails before the cache or the CRM

        async def fetch() -> list[Any]:
            page = await self._paged("customer_page", "/api/v1/customers", params, query.first, query.after)
            return [list(page.items), list(page.cursors), page.has_next]

        items, cursors, has_next = await self.cache.one(self.name, "customer_page", query, fetch)
        return Slice(tuple(self.customer_map.apply(r, source=self.name) for r in items), tuple(cursors), has_next)

    async def update_customer(self, crm_id: str, changes: Mapping[str, str | None], *,
                              idempotency_key: str | None = None) -> CrmCustomer:
        """PATCH a customer's contact fields, then forget what the cache held about it."""
        body = await self.transport.send_json("update_customer", "PATCH", f"/api/v1/customers/{crm_id}",
                                              dict(changes), idempotency_key=idempotency_key)
        await self.cache.invalidate(self.name, "customers", [crm_id])
        await self.cache.invalidate(self.name, "customer_page")
        return self.customer_map.apply(body, source=self.name)

    async def all_customer_refs(self) -> list[tuple[str, str | None]]:
        """Every customer's (id, raw ERP number): the crosswalk's input."""
        refs: list[tuple[str, str | None]] = []
        cursor: str | None = None
        while True:
            body = await self.transport.get_json("customer_index", "/api/v1/customers",
                                                 {"limit": self.page_limit, "cursor": cursor})
            for raw in items_under(body, "data", self.name):
                if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                    raise UpstreamBadResponse(self.name, "customer without an id")
                number = raw.get("erpCustomerNumber")
                refs.append((raw["id"], number if isinstance(number, str) else None))
            cursor = body.get("nextCursor")
            if not cursor:
                return refs

    async def interactions_of(self, customer_ids: Sequence[str],
                              query: InteractionQuery) -> dict[str, Slice[Interaction]]:
        """The first page of interactions of each customer: one batch call (per 100 customers)."""
        kind = KIND_CODES[query.kind] if query.kind else None
        _page_cursor(query.after)

        async def fetch(wanted: list[str]) -> dict[str, Any]:
            if query.after is not None:
                # A cursor belongs to one customer's list; resume each one on its own.
                pages = await asyncio.gather(*(
                    self._paged("interactions", f"/api/v1/customers/{cid}/interactions", {"kind": kind},
                                query.first, query.after) for cid in wanted))
                return {cid: [list(p.items), list(p.cursors), p.has_next] for cid, p in zip(wanted, pages, strict=True)}
            found: dict[str, Any] = {cid: [[], [], False] for cid in wanted}
            chunks = [wanted[i: i + BATCH_LIMIT] for i in range(0, len(wanted), BATCH_LIMIT)]
            bodies = await asyncio.gather(*(self.transport.get_json(
                "interactions_batch", "/api/v1/interactions",
                {"customerIds": ",".join(c), "limit": query.first + 1, "kind": kind}, keys=len(c)) for c in chunks))
            for body in bodies:
                for result in items_under(body, "results", self.name):
                    if not isinstance(result, dict) or result.get("customerId") not in found:
                        raise UpstreamBadResponse(self.name, "interaction batch for an unknown customer")
                    raw_items = items_under(result, "data", self.name)
                    page = raw_items[: query.first]
                    found[result["customerId"]] = [page, [encode_cursor("", i + 1) for i in range(len(page))],
                                                   len(raw_items) > query.first or bool(result.get("nextCursor"))]
            return found

        raw = await self.cache.many(self.name, "interactions_of", customer_ids, query, fetch)
        out: dict[str, Slice[Interaction]] = {}
        for cid in customer_ids:
            items, cursors, has_next = raw.get(cid, [[], [], False])
            out[cid] = Slice(tuple(INTERACTION_MAP.apply(r, source=self.name) for r in items), tuple(cursors),
                             bool(has_next))
        return out

    async def health(self) -> Health:
        return await self.transport.health("/healthz")

    async def aclose(self) -> None:
        await self.transport.aclose()
