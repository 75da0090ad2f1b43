"""What resolvers get from the gateway: the sources, per-request loaders, and request facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.audit import AuditReader
from auth.principal import ANONYMOUS, Principal
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
