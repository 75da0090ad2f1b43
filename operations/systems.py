"""The systems operations write to, as the composition root hands them over."""

from __future__ import annotations

from dataclasses import dataclass

from sources.crm import CrmSource
from sources.crosswalk import EMPTY_INDEX, Crosswalk
from sources.erp import ErpSource
from sources.erp_writes import ErpWriter
from sources.errors import SourceUnavailable
from sources.partners import LogisticsSource, SupplierSource


@dataclass(frozen=True, slots=True)
class Systems:
    erp: ErpSource  # reads (checks before a write)
    erp_writer: ErpWriter  # transactional writes
    crm: CrmSource
    supplier: SupplierSource
    logistics: LogisticsSource
    crosswalk: Crosswalk

    async def crm_id_of(self, customer: str) -> str | None:
        """The CRM record of an ERP customer; None when it has none. Raises while the link index cannot be
        built (the CRM is down): "no record" must never be guessed from "not known yet"."""
        index = await self.crosswalk.index()
        if index is EMPTY_INDEX:
            raise SourceUnavailable("crm", "the customer link index is not built yet")
        link = index.by_erp.get(customer.strip())
        return None if link is None else link.crm_id
