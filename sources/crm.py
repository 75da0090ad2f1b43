"""The CRM's REST API: customers (with their ERP cross-reference) and interactions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from sources.base import Health, Slice
from sources.cache import Cache, NoCache
from sources.cursors import UpstreamSlice, read_pages, upstream_kind
from sources.errors import UpstreamBadResponse
from sources.mapping import Field, RecordMap, code, email, iso_datetime, nested, optional, phone, strip, text
from sources.rest import RestTransport, items_under
from sources.values import InteractionKind, Segment

SEGMENTS = {"enterprise": Segment.ENTERPRISE, "mid_market": Segment.MID_MARKET, "smb": Segment.SMB,
            "public_sector": Segment.PUBLIC_SECTOR}
SEGMENT_CODES = {v: k for k, v in SEGMENTS.items()}
KINDS = {"call": InteractionKind.CALL, "email": InteractionKind.EMAIL, "ticket": InteractionKind.TICKET,
         "meeting": InteractionKind.MEETING, "order": InteractionKind.ORDER}
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


# The CRM hands out a cursor per page; ours are (that cursor, items of its page seen), one per edge.
CUSTOMER_CURSOR = upstream_kind("customers")
INTERACTION_CURSOR = upstream_kind("interactions")


def _cached(page: UpstreamSlice) -> list[Any]:
    """What the cache keeps of a page: raw items and positions, never cursors (their key is per process)."""
    return [page.items, [list(p) for p in page.positions], page.has_next]


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
                     after: tuple[str | int, ...] | None) -> UpstreamSlice:
        """Read enough of the CRM's pages for `first` raw items after a position."""
        async def read(cursor: str | None, limit: int) -> tuple[list[Any], Any]:
            body = await self.transport.get_json(operation, path, {**params, "limit": limit, "cursor": cursor})
            return items_under(body, "data", self.name), body.get("nextCursor")

        return await read_pages(read, first, after, page_limit=self.page_limit, source=self.name)

    async def customer_page(self, query: CustomerQuery) -> Slice[CrmCustomer]:
        params: dict[str, Any] = {"q": query.text, "segment": SEGMENT_CODES[query.segment] if query.segment else None}
        after = CUSTOMER_CURSOR.after(query.after)  # a bad cursor fails before the cache or the CRM

        async def fetch() -> list[Any]:
            return _cached(await self._paged("customer_page", "/api/v1/customers", params, query.first, after))

        items, positions, has_next = await self.cache.one(self.name, "customer_page", query, fetch)
        return Slice(tuple(self.customer_map.apply(r, source=self.name) for r in items),
                     tuple(CUSTOMER_CURSOR.encode(*p) for p in positions), has_next)

    async def update_customer(self, crm_id: str, changes: Mapping[str, str | None], *,
                              idempotency_key: str | None = None) -> CrmCustomer:
        """PATCH a customer's contact fields, then forget what the cache held about it."""
        body = await self.transport.send_json("update_customer", "PATCH", f"/api/v1/customers/{crm_id}",
                                              dict(changes), idempotency_key=idempotency_key)
        await self.cache.invalidate(self.name, "customers", [crm_id])
        await self.cache.invalidate(self.name, "customer_page")
        return self.customer_map.apply(body, source=self.name)

    async def add_interaction(self, crm_id: str, kind: str, subject: str, *, idempotency_key: str) -> Interaction:
        """Log an interaction with a customer (`kind` is the CRM's code: call, email, ticket, meeting, order).

        Sent once with the caller's Idempotency-Key: a retry with the same key gets the same interaction back.
        """
        body = await self.transport.send_json("add_interaction", "POST",
                                              f"/api/v1/customers/{quote(crm_id, safe='')}/interactions",
                                              {"kind": kind, "subject": subject}, idempotency_key=idempotency_key)
        if not isinstance(body, dict):
            raise UpstreamBadResponse(self.name, "expected an interaction")
        interaction = INTERACTION_MAP.apply(body, source=self.name)
        # Cached per (customer, query): keys alone cannot name them, so every customer's pages go.
        await self.cache.invalidate(self.name, "interactions_of")
        return interaction

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
        after = INTERACTION_CURSOR.after(query.after)  # a bad cursor fails before the cache or the CRM

        async def fetch(wanted: list[str]) -> dict[str, Any]:
            if after is not None:
                # A cursor belongs to one customer's list; resume each one on its own.
                pages = await asyncio.gather(*(
                    self._paged("interactions", f"/api/v1/customers/{cid}/interactions", {"kind": kind},
                                query.first, after) for cid in wanted))
                return {cid: _cached(p) for cid, p in zip(wanted, pages, strict=True)}
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
                    found[result["customerId"]] = [page, [["", i + 1] for i in range(len(page))],
                                                   len(raw_items) > query.first or bool(result.get("nextCursor"))]
            return found

        raw = await self.cache.many(self.name, "interactions_of", customer_ids, query, fetch)
        out: dict[str, Slice[Interaction]] = {}
        for cid in customer_ids:
            items, positions, has_next = raw.get(cid, [[], [], False])
            out[cid] = Slice(tuple(INTERACTION_MAP.apply(r, source=self.name) for r in items),
                             tuple(INTERACTION_CURSOR.encode(*p) for p in positions),
                             bool(has_next))
        return out

    async def health(self) -> Health:
        return await self.transport.health("/healthz")

    async def aclose(self) -> None:
        await self.transport.aclose()
