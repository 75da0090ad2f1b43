"""What resolvers get from the gateway: the sources, per-request loaders, and request facts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from auth.audit import AuditReader
from auth.principal import ANONYMOUS, Principal
from operations.saga import Outcome
from operations.service import Operations
from resolvers.loaders import Loaders
from sources.base import CallLog
from sources.cache import SourceCache
from sources.crm import CrmSource
from sources.crosswalk import Crosswalk, SqlLinkStore
from sources.erp import ErpSource
from sources.partners import LogisticsSource, SupplierSource


@dataclass(frozen=True, slots=True)
class Services:
    """The long-lived parts, built once per gateway process."""

    erp: ErpSource
    crm: CrmSource
    supplier: SupplierSource
    logistics: LogisticsSource
    crosswalk: Crosswalk
    links: SqlLinkStore
    cache: SourceCache
    max_page_size: int = 100
    phone_region: str = "US"
    audit: AuditReader | None = None
    operations: Operations | None = None


@dataclass(slots=True)
class Context:
    """One request's context: strawberry passes it to every resolver as `info.context`."""

    services: Services
    request_id: str
    principal: Principal = ANONYMOUS
    calls: CallLog = field(default_factory=CallLog)
    loaders: Loaders = field(default_factory=Loaders)
    #: Look-ahead answers by (field nodes, path): the same selection under every item of a list.
    selections: dict[tuple[int, tuple[str, ...]], object] = field(default_factory=dict)
    #: The client's `Idempotency-Key` header, if it sent one (validated by the HTTP layer).
    idempotency_key: str | None = None
    #: The business operations this request ran (or replayed), for its audit record.
    sagas: list[Outcome] = field(default_factory=list)

    def idempotency_key_for(self, step: str) -> str:
        """The key a write step sends upstream: the same for a client's retry, never shared between principals.

        Derived from the principal, the step and the client's `Idempotency-Key`, so two callers who
        happen to pick the same key cannot replay each other's writes, and nothing the client chose
        reaches an upstream system verbatim. Without the header, the request id stands in for it (a client
        may set that too, with `X-Request-Id`, so it is scoped the same way); a retry then needs the header.
        """
        p = self.principal
        given = ["key", self.idempotency_key] if self.idempotency_key is not None else ["request", self.request_id]
        scope = orjson.dumps([p.kind.value, p.subject, p.partner_id, step, *given])
        return hashlib.sha256(scope).hexdigest()
