"""The customer crosswalk: which CRM customer is which ERP customer.

The CRM keeps the ERP customer number as free text, so it is missing on some records and typed
differently on others ("C-100001", "0100001", "100 001"). The crosswalk links records by the number
when it matches, by the normalised number when that names a real ERP customer, and otherwise by a
link a data steward maintained (`gateway crosswalk link`). What stays unlinked is reported, not guessed.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import structlog
from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sources.crm import CrmSource
from sources.erp import ErpSource
from sources.errors import SourceError
from sources.tasks import watch

VERIFY_CHUNK = 1000
RETRY_BUILD_S = 10.0  # after a failed first build, how long to answer without links before trying again
log = structlog.get_logger("sources.crosswalk")


class LinkMethod(enum.Enum):
    EXACT = "EXACT"
    NORMALISED = "NORMALISED"
    MANUAL = "MANUAL"


@dataclass(frozen=True, slots=True)
class Link:
    crm_id: str
    erp_number: str
    method: LinkMethod


@dataclass(frozen=True, slots=True)
class Unlinked:
    crm_id: str
    raw_erp_number: str | None
    reason: str  # missing | unknown_erp_number | duplicate


@dataclass(frozen=True, slots=True)
class CrosswalkIndex:
    by_erp: Mapping[str, Link]
    by_crm: Mapping[str, Link]
    unlinked: tuple[Unlinked, ...]
    built_at: float = field(default_factory=time.monotonic)

    def counts(self) -> dict[str, int]:
        out = {m.value.lower(): 0 for m in LinkMethod}
        for link in self.by_crm.values():
            out[link.method.value.lower()] += 1
        out["unlinked"] = len(self.unlinked)
        return out


def normalise_erp_number(raw: str | None) -> str | None:
    """The digits of a typed ERP number without leading zeros, or None if nothing usable is left."""
    if raw is None:
        return None
    digits = re.sub(r"\D", "", raw).lstrip("0")
    return digits if 0 < len(digits) <= 8 else None


class LinkStore(Protocol):
    """Where maintained links live (crm id -> ERP number)."""

    async def all(self) -> dict[str, str]: ...

    async def put(self, crm_id: str, erp_number: str, note: str = "") -> None: ...

    async def remove(self, crm_id: str) -> bool: ...


metadata = MetaData()
customer_links = Table(
    "customer_links", metadata,
    Column("crm_id", String(64), primary_key=True),
    Column("erp_number", String(16), nullable=False),
    Column("note", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class SqlLinkStore:
    """Maintained links in the gateway's own database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def all(self) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(customer_links.c.crm_id, customer_links.c.erp_number))
            return {str(r.crm_id): str(r.erp_number) for r in rows}

    async def put(self, crm_id: str, erp_number: str, note: str = "") -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(customer_links).where(customer_links.c.crm_id == crm_id))
            await conn.execute(insert(customer_links).values(
                crm_id=crm_id, erp_number=erp_number, note=note, created_at=datetime.now(UTC)))

    async def remove(self, crm_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(customer_links).where(customer_links.c.crm_id == crm_id))
            return bool(result.rowcount)


_RANK = {LinkMethod.MANUAL: 0, LinkMethod.EXACT: 1, LinkMethod.NORMALISED: 2}
EMPTY_INDEX = CrosswalkIndex({}, {}, (), built_at=0.0)


class Crosswalk:
    """Builds the link index from the CRM, the ERP and the maintained links; refreshes it in the background."""

    def __init__(self, crm: CrmSource, erp: ErpSource, links: LinkStore, *, refresh_seconds: float = 300) -> None:
        self.crm = crm
        self.erp = erp
        self.links = links
        self.refresh_seconds = refresh_seconds
        self._index: CrosswalkIndex | None = None
        self._retry_after = 0.0
        self._building: asyncio.Task[CrosswalkIndex] | None = None

    async def index(self) -> CrosswalkIndex:
        """The current index. The first call builds it; later calls never wait for a refresh."""
        current = self._index
        if current is not None:
            if time.monotonic() - current.built_at > self.refresh_seconds and self._building is None:
                self._start_build()
            return current
        if time.monotonic() < self._retry_after:
            return EMPTY_INDEX
        task = self._building or self._start_build()
        try:
            return await asyncio.shield(task)
        except SourceError as exc:
            # Without the CRM there are no links yet: answer ERP-only customers rather than nothing,
            # and try again a little later instead of on every request.
            self._retry_after = time.monotonic() + RETRY_BUILD_S
            log.warning("crosswalk_unavailable", source=exc.source, code=exc.code)
            return EMPTY_INDEX

    def _start_build(self) -> asyncio.Task[CrosswalkIndex]:
        task = watch(asyncio.get_running_loop().create_task(self.build(), name="crosswalk-build"),
                     "crosswalk_build_failed")
        self._building = task

        def done(t: asyncio.Task[CrosswalkIndex]) -> None:
            self._building = None
            if not t.cancelled() and t.exception() is None:
                self._index = t.result()

        task.add_done_callback(done)
        return task

    def refresh_soon(self) -> None:
        """Rebuild in the background at the next call, serving the current index meanwhile."""
        if self._index is not None:
            self._index = CrosswalkIndex(self._index.by_erp, self._index.by_crm, self._index.unlinked, built_at=0.0)

    def invalidate(self) -> None:
        """Forget the index (after a link was added or removed); the next call rebuilds it."""
        self._index = None

    async def build(self) -> CrosswalkIndex:
        refs, manual = await asyncio.gather(self.crm.all_customer_refs(), self.links.all())
        candidates: list[tuple[str, str, LinkMethod]] = []
        unlinked: list[Unlinked] = []
        for crm_id, raw in refs:
            if crm_id in manual:
                candidates.append((crm_id, manual[crm_id], LinkMethod.MANUAL))
                continue
            number = normalise_erp_number(raw)
            if number is None:
                unlinked.append(Unlinked(crm_id, raw, "missing"))
            else:
                method = LinkMethod.EXACT if raw == number else LinkMethod.NORMALISED
                candidates.append((crm_id, number, method))
        wanted = sorted({number for _, number, _ in candidates})
        chunks = [wanted[i: i + VERIFY_CHUNK] for i in range(0, len(wanted), VERIFY_CHUNK)]
        found = await asyncio.gather(*(self.erp.customers(c) for c in chunks))
        existing = {number for part in found for number in part}
        raw_of = dict(refs)
        by_erp: dict[str, Link] = {}
        for crm_id, number, method in sorted(candidates, key=lambda c: (_RANK[c[2]], c[0])):
            if number not in existing:
                unlinked.append(Unlinked(crm_id, raw_of.get(crm_id), "unknown_erp_number"))
            elif number in by_erp:
                unlinked.append(Unlinked(crm_id, raw_of.get(crm_id), "duplicate"))
            else:
                by_erp[number] = Link(crm_id, number, method)
        by_crm = {link.crm_id: link for link in by_erp.values()}
        return CrosswalkIndex(by_erp, by_crm, tuple(sorted(unlinked, key=lambda u: u.crm_id)))
