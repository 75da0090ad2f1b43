"""The root Query: entry points into the unified graph."""

from __future__ import annotations

import datetime

import strawberry
from strawberry import relay

from auth.audit import AuditFilter
from resolvers import customer as customers
from resolvers.permissions import purchase_order_supplier_filter
from resolvers.prefetch import send
from schema.types.audit import AuditEvent, AuditEventFilter
from schema.types.common import (
    Connection,
    GatewayInfo,
    OrderStatus,
    PartnerKind,
    PurchaseOrderStatus,
    Segment,
    bad_input,
    page_size,
    to_connection,
)
from schema.types.customer import Customer
from schema.types.order import Order, Shipment
from schema.types.partner import Partner, PurchaseOrder
from schema.types.product import Product, Warehouse
from sources.base import Slice
from sources.crm import CustomerQuery
from sources.erp import ItemQuery, OrderQuery
from sources.partners import PurchaseOrderQuery


@strawberry.input(description="Customer filters; all given ones must match.")
class CustomerFilter:
    name: str | None = strawberry.field(default=None, description="Part of the name, any case.")
    segment: Segment | None = None


@strawberry.input(description="Order filters; all given ones must match. Dates are inclusive.")
class OrderListFilter:
    customer: relay.GlobalID | None = None
    statuses: list[OrderStatus] | None = None
    placed_from: datetime.date | None = None
    placed_to: datetime.date | None = None


@strawberry.input
class ProductFilter:
    text: str | None = strawberry.field(default=None, description="Part of the SKU or the name, any case.")


@strawberry.input
class PurchaseOrderFilter:
    partner: str | None = strawberry.field(default=None, description="Supplier code, e.g. V00002.")
    status: PurchaseOrderStatus | None = None


def _customer_key(global_id: relay.GlobalID) -> str:
    if global_id.type_name != "Customer":
        raise bad_input(f"expected a Customer id, got a {global_id.type_name} id")
    return global_id.node_id


@strawberry.type(description="Whether the gateway answers; the one query callers without credentials may run.")
class Health:
    status: str


@strawberry.type
class Query:
    @strawberry.field(description="Liveness of the gateway itself (see /readyz for the sources).")
    def health(self) -> Health:
        return Health(status="ok")

    node: relay.Node | None = relay.node(description="Any object by its global id.")
    nodes: list[relay.Node | None] = relay.node(description="Several objects by global id, in order.")

    @strawberry.field(description="A customer by global id or by ERP customer number.")
    async def customer(self, info: GatewayInfo, id: relay.GlobalID | None = None,
                       number: str | None = None) -> Customer | None:
        if (id is None) == (number is None):
            raise bad_input("give exactly one of `id` and `number`")
        key = _customer_key(id) if id is not None else str(number).strip()
        await customers.prefetch(info, [key])
        return (await customers.by_keys(info, [key]))[0]

    @strawberry.field(description="Customers from the CRM, by name.")
    async def customers(self, info: GatewayInfo, first: int = 20, after: str | None = None,
                        filter: CustomerFilter | None = None) -> Connection[Customer] | None:
        query = CustomerQuery(first=page_size(info, first), after=after,
                              text=filter.name if filter else None, segment=filter.segment if filter else None)
        found, cursors, has_next = await customers.page(info, query)
        return to_connection(Slice(tuple(found), tuple(cursors), has_next), lambda c: c)

    @strawberry.field(description="An order by its ERP order number.")
    async def order(self, info: GatewayInfo, number: str) -> Order | None:
        return (await Order.resolve_nodes(info=info, node_ids=[number.strip()]))[0]

    @strawberry.field(description="Orders, newest first.")
    async def orders(self, info: GatewayInfo, first: int = 20, after: str | None = None,
                     filter: OrderListFilter | None = None) -> Connection[Order] | None:
        query = OrderQuery(
            first=page_size(info, first), after=after,
            statuses=tuple(filter.statuses or ()) if filter else (),
            placed_from=filter.placed_from if filter else None, placed_to=filter.placed_to if filter else None,
            customer=_customer_key(filter.customer) if filter and filter.customer else None)
        if query.customer and query.customer.startswith(customers.CRM_PREFIX):
            return to_connection(Slice.empty(), Order.of)  # a CRM-only customer has no ERP orders
        result = await info.context.services.erp.order_page(query)
        # The page's customers and lines are read now, while the orders are being resolved, not after; the
        # customers first, as the CRM is the slower system.
        await Order.prefetch_customers(info, result.items, at=("edges", "node"))
        Order.prefetch(info, result.items, at=("edges", "node"))
        await send()
        return to_connection(result, Order.of)

    @strawberry.field(description="A product by SKU.")
    async def product(self, info: GatewayInfo, sku: str) -> Product | None:
        Product.prefetch(info, [sku.strip()])
        return await Product.load(info, sku.strip())

    @strawberry.field(description="Products, in SKU order.")
    async def products(self, info: GatewayInfo, first: int = 20, after: str | None = None,
                       filter: ProductFilter | None = None) -> Connection[Product] | None:
        query = ItemQuery(first=page_size(info, first), after=after, text=filter.text if filter else None)
        result = await info.context.services.erp.item_page(query)
        return to_connection(result, Product.of)

    @strawberry.field
    async def warehouses(self, info: GatewayInfo) -> list[Warehouse] | None:
        found = await info.context.services.erp.warehouses()
        return [Warehouse.of(w) for w in found.values()]

    @strawberry.field(description="Partners, optionally of one kind.")
    async def partners(self, info: GatewayInfo, kind: PartnerKind | None = None) -> list[Partner] | None:
        found = await info.context.services.erp.vendors()
        return [Partner.of(v) for v in found.values() if kind is None or v.kind == kind]

    @strawberry.field(description="A partner by its vendor code.")
    async def partner(self, info: GatewayInfo, code: str) -> Partner | None:
        return (await Partner.resolve_nodes(info=info, node_ids=[code.strip()]))[0]

    @strawberry.field(description="Purchase orders from the supplier portal, newest first.")
    async def purchase_orders(self, info: GatewayInfo, first: int = 20, after: str | None = None,
                              filter: PurchaseOrderFilter | None = None) -> Connection[PurchaseOrder] | None:
        supplier = purchase_order_supplier_filter(info.context.principal, filter.partner if filter else None)
        query = PurchaseOrderQuery(first=page_size(info, first), after=after, supplier=supplier,
                                   status=filter.status if filter else None)
        result = await info.context.services.supplier.purchase_order_page(query)
        return to_connection(result, PurchaseOrder.of)

    @strawberry.field(description="The audit trail, newest first (needs `audit:read`).")
    async def audit_events(self, info: GatewayInfo, first: int = 20, after: str | None = None,
                           filter: AuditEventFilter | None = None) -> Connection[AuditEvent] | None:
        reader = info.context.services.audit
        info.context.calls.uncacheable = True  # the trail grows with every request: never a kept answer
        if reader is None:
            raise bad_input("the audit trail is not enabled")
        f = filter or AuditEventFilter()
        where = AuditFilter(subject=f.subject, partner_id=f.partner, operation_name=f.operation, outcome=f.outcome,
                            since=f.from_, until=f.to)
        page = await reader.events(where, page_size(info, first), after)
        return to_connection(Slice(page.records, page.cursors, page.has_next), lambda r: AuditEvent(record=r))

    @strawberry.field(description="A shipment by tracking number.")
    async def shipment(self, info: GatewayInfo, tracking_number: str) -> Shipment | None:
        return (await Shipment.resolve_nodes(info=info, node_ids=[tracking_number.strip()]))[0]
