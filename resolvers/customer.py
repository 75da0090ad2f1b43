"""Customers: one business customer merged from the CRM (contact, segment) and the ERP (credit, orders).

A customer's key is its ERP number when it has one, else `crm:<CRM id>`; the crosswalk says which CRM
record belongs to which ERP customer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from graphql import FieldNode

from resolvers.prefetch import arguments, may_resolve, prefetch_many, selection, selects
from resolvers.prefetch import prefetch as prefetch_load
from sources.crm import CrmCustomer, CustomerQuery
from sources.crosswalk import CrosswalkIndex
from sources.erp import ErpCustomer
from sources.errors import SourceError
from sources.keys import CRM_ID, CUSTOMER_NUMBER, KeyFormat

if TYPE_CHECKING:
    from schema.types.common import GatewayInfo
    from schema.types.customer import Customer

CRM_PREFIX = "crm:"

#: A customer's key, the node id of its global id: its ERP number, or `crm:` and its CRM id.
KEY = KeyFormat(
    "an ERP customer number or `crm:` and a CRM id",
    re.compile(f"{re.escape(CRM_PREFIX)}(?:{CRM_ID.pattern.pattern})|{CUSTOMER_NUMBER.pattern.pattern}", re.ASCII),
    str)


def _customer_type() -> type[Customer]:
    from schema.types.customer import Customer

    return Customer


def from_erp_number(index: CrosswalkIndex, number: str) -> Customer:
    link = index.by_erp.get(number)
    return _customer_type()(key=number, erp_number=number, crm_id=link.crm_id if link else None)


def from_crm_id(index: CrosswalkIndex, crm_id: str) -> Customer:
    link = index.by_crm.get(crm_id)
    if link is not None:
        return _customer_type()(key=link.erp_number, erp_number=link.erp_number, crm_id=crm_id)
    return _customer_type()(key=f"{CRM_PREFIX}{crm_id}", erp_number=None, crm_id=crm_id)


async def by_keys(info: GatewayInfo, keys: Iterable[str]) -> list[Customer | None]:
    """Customers by key, None for those that exist in neither system."""
    ctx = info.context
    keys = list(keys)
    index = await ctx.services.crosswalk.index()
    erp_numbers = [k for k in keys if not k.startswith(CRM_PREFIX)]
    crm_ids = [k[len(CRM_PREFIX):] for k in keys if k.startswith(CRM_PREFIX)]
    erp_found = await ctx.loaders.load_many(ctx.services.erp.customers, erp_numbers) if erp_numbers else []
    crm_found = await ctx.loaders.load_many(ctx.services.crm.customers, crm_ids) if crm_ids else []
    found_erp = {n for n, r in zip(erp_numbers, erp_found, strict=True) if r is not None}
    found_crm = {i for i, r in zip(crm_ids, crm_found, strict=True) if r is not None}
    out: list[Customer | None] = []
    for key in keys:
        if key.startswith(CRM_PREFIX):
            crm_id = key[len(CRM_PREFIX):]
            out.append(from_crm_id(index, crm_id) if crm_id in found_crm else None)
        else:
            out.append(from_erp_number(index, key) if key in found_erp else None)
    return out


#: Customer fields answered from the CRM record.
CRM_FIELDS = ("name", "email", "phone", "contactName", "segment", "accountManager")


def _first_only(info: GatewayInfo, node: FieldNode, default: int) -> int | None:
    """`first` of a selected page whose only argument it is (anything else: no look-ahead), if valid."""
    args = arguments(info, node)
    first = args.pop("first", default)
    if args or not isinstance(first, int) or not 1 <= first <= info.context.services.max_page_size:
        return None
    return first


#: Customer fields answered from the ERP record.
ERP_FIELDS = ("creditLimit", "balance", "availableCredit", "paymentTerms", "status")


async def prefetch(info: GatewayInfo, keys: Iterable[str], *, at: tuple[str, ...] = ()) -> None:
    """Start, with the customers' own lookup, the loads their selected fields (at path `at`) will make.

    A customer's ERP record, its CRM record, its orders and its interactions all hang off the key and
    the crosswalk, so they are read in one wave instead of two; its orders' lines follow as soon as the
    orders arrive (resolvers.prefetch).
    """
    from schema.types.order import Order
    from sources.crm import InteractionQuery
    from sources.erp import OrderQuery

    services = info.context.services
    index = await services.crosswalk.index()

    def wanted(*names: str) -> bool:
        return any(selects(info, *at, name) and may_resolve(info, f"Customer.{name}") for name in names)

    orders = selection(info, *at, "orders") if may_resolve(info, "Customer.orders") else None
    orders_first = _first_only(info, orders, 10) if orders else None
    interactions = selection(info, *at, "interactions") if may_resolve(info, "Customer.interactions") else None
    interactions_first = _first_only(info, interactions, 10) if interactions else None
    erp_fields, named, crm_fields = wanted(*ERP_FIELDS), wanted("name", "phone"), wanted(*CRM_FIELDS)
    nodes = (*at, "orders", "edges", "node")
    erp_records, crm_records, crm_interactions = [], [], []
    for key in dict.fromkeys(keys):
        erp_number: str | None
        crm_id: str | None
        if key.startswith(CRM_PREFIX):
            link = index.by_crm.get(key[len(CRM_PREFIX):])
            erp_number, crm_id = (link.erp_number if link else None), key[len(CRM_PREFIX):]
        else:
            link = index.by_erp.get(key)
            erp_number, crm_id = key, (link.crm_id if link else None)
        if erp_number is not None:
            if orders_first is not None:
                prefetch_load(info, services.erp.orders_of_customers, erp_number, OrderQuery(first=orders_first),
                              then=lambda page: Order.prefetch(info, page.items, at=nodes))
            if erp_fields or (named and crm_id is None):  # without a CRM record, the ERP names the customer
                erp_records.append(erp_number)
        if crm_id is not None:
            if crm_fields:
                crm_records.append(crm_id)
            if interactions_first is not None:
                crm_interactions.append(crm_id)
    prefetch_many(info, services.erp.customers, erp_records)
    prefetch_many(info, services.crm.customers, crm_records)
    if interactions_first is not None:
        prefetch_many(info, services.crm.interactions_of, crm_interactions, InteractionQuery(first=interactions_first))


async def crm_record(info: GatewayInfo, customer: Customer) -> CrmCustomer | None:
    if customer.crm_id is None:
        return None
    ctx = info.context
    return await ctx.loaders.load(ctx.services.crm.customers, customer.crm_id)


async def erp_record(info: GatewayInfo, customer: Customer) -> ErpCustomer | None:
    if customer.erp_number is None:
        return None
    ctx = info.context
    return await ctx.loaders.load(ctx.services.erp.customers, customer.erp_number)


async def name(info: GatewayInfo, customer: Customer) -> str | None:
    """The CRM's name (kept by account managers); the ERP's when the CRM has no record or cannot answer.

    Both systems hold the name, so a CRM failure need not cost the field; it only fails when neither
    system can name the customer.
    """
    try:
        crm = await crm_record(info, customer)
    except SourceError:
        if customer.erp_number is None:
            raise
        crm = None
    if crm is not None:
        return crm.name
    erp = await erp_record(info, customer)
    return erp.name if erp is not None else None


async def phone(info: GatewayInfo, customer: Customer) -> str | None:
    crm = await crm_record(info, customer)
    if crm is not None and crm.phone:
        return crm.phone
    erp = await erp_record(info, customer)
    return erp.phone if erp is not None else None


async def page(info: GatewayInfo, query: CustomerQuery) -> tuple[list[Customer], list[str], bool]:
    """One page of customers from the CRM, which owns names and segments."""
    ctx = info.context
    result = await ctx.services.crm.customer_page(query)
    index = await ctx.services.crosswalk.index()
    loader = ctx.loaders.get(ctx.services.crm.customers, None)
    for record in result.items:
        loader.prime(record.id, record)  # the page already holds what name/email resolvers would fetch
    return [from_crm_id(index, r.id) for r in result.items], list(result.cursors), result.has_next
