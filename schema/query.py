"""The root Query: entry points into the unified graph."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Annotated, Any

import strawberry
from strawberry import relay

from auth.audit import AuditFilter
from operations.saga import SagaState
from resolvers import customer as customers
from resolvers import operations as ops
from resolvers.permissions import purchase_order_supplier_filter
from resolvers.prefetch import send
from schema.types.audit import AuditEvent, AuditEventFilter
from schema.types.common import (
    After,
    Connection,
    First,
    GatewayInfo,
    PartnerKind,
    PurchaseOrderStatus,
    Segment,
    bad_input,
    global_id_argument,
    id_key,
    key_argument,
    page_size,
    to_connection,
    typed_id_argument,
)
from schema.types.customer import Customer, OrderFilter
from schema.types.operations import Saga
from schema.types.order import Order, Shipment
from schema.types.partner import Partner, PurchaseOrder
from schema.types.product import Product, Warehouse
from sources import keys
from sources.base import Slice
from sources.crm import CustomerQuery
from sources.cursors import CursorKind
from sources.erp import ORDER_CURSOR, ItemQuery, OrderQuery
from sources.keys import KeyFormat
from sources.partners import PurchaseOrderQuery


@strawberry.input(description="Customer filters; all given ones must match.")
class CustomerFilter:
    name: str | None = strawberry.field(default=None, description="Part of the name, any case.")
    segment: Segment | None = strawberry.field(default=None, description="Only customers in this CRM segment.")


@strawberry.input(description="Order filters; all given ones must match. Dates are inclusive.")
class OrderListFilter(OrderFilter):
    customer: strawberry.ID | None = strawberry.field(
        default=None, description="Only this customer's orders: its `Customer.id`.")


@strawberry.input(description="Product filters.")
class ProductFilter:
    text: str | None = strawberry.field(default=None, description="Part of the SKU or the name, any case.")


@strawberry.input(description="Purchase order filters; all given ones must match. Partner tokens see only their "
                              "own purchase orders whatever the filter.")
class PurchaseOrderFilter:
    partner: str | None = strawberry.field(default=None, description="Supplier code, e.g. V00002.")
    status: PurchaseOrderStatus | None = strawberry.field(default=None,
                                                          description="Only purchase orders in this status.")


#: Node type -> its class and the format of its key, the node id in its global id (sources.keys).
NODE_KEYS: Mapping[str, tuple[type[relay.Node], KeyFormat[Any]]] = {
    "Customer": (Customer, customers.KEY), "Order": (Order, keys.ORDER_NUMBER), "Product": (Product, keys.SKU),
    "Warehouse": (Warehouse, keys.WAREHOUSE_CODE), "Partner": (Partner, keys.VENDOR_CODE),
    "PurchaseOrder": (PurchaseOrder, keys.PO_NUMBER), "Shipment": (Shipment, keys.TRACKING_NUMBER),
}


def _node_key(value: str, argument: str) -> tuple[type[relay.Node], str]:
    """The Node type and key a global id argument names; BAD_USER_INPUT naming the argument if it names none."""
    global_id = global_id_argument(value, argument)
    node = NODE_KEYS.get(global_id.type_name)
    if node is None:
        raise bad_input(f"`{argument}` is not an id this API issued")
    node_type, key = node
    return node_type, str(id_key(global_id, key, argument))


async def _resolve_nodes(info: GatewayInfo, node_type: type[relay.Node],
                         node_keys: list[str]) -> list[relay.Node | None]:
    found = node_type.resolve_nodes(info=info, node_ids=node_keys)
    return list(await found if inspect.isawaitable(found) else found)


@strawberry.type(description="Whether the gateway answers; the one query callers without credentials may run.")
class Health:
    status: str = strawberry.field(description="Always \"ok\" when the gateway answers; it says nothing of the "
                                               "upstream systems (/readyz does).")


#: Sagas run newest first, keyed by (start time in ms, as digits: it outgrows a cursor's 32-bit numbers; id).
SAGA_CURSOR = CursorKind("sagas", (str, str))


@strawberry.type(description="Entry points into one graph over the ERP, the CRM and the partner systems. Each "
                              "needs a scope of the caller's token (FORBIDDEN otherwise); `health` needs none.")
class Query:
    # Ids are decoded here, not by strawberry's relay fields: a malformed one is then BAD_USER_INPUT naming
    # its argument, and never reaches a source.
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: GatewayInfo,
                   id: Annotated[strawberry.ID, strawberry.argument(description="The ID of the object.")]
                   ) -> relay.Node | None:
        node_type, key = _node_key(id, "id")
        return (await _resolve_nodes(info, node_type, [key]))[0]

    @strawberry.field(description="Several objects by global id, in order.")
    async def nodes(self, info: GatewayInfo,
                    ids: Annotated[list[strawberry.ID], strawberry.argument(description="The IDs of the objects.")]
                    ) -> list[relay.Node | None]:
        cap = info.context.services.max_page_size
        if len(ids) > cap:
            raise bad_input(f"`ids` may hold at most {cap} ids, got {len(ids)}")
        wanted = [_node_key(value, f"ids[{i}]") for i, value in enumerate(ids)]
        by_type: dict[type[relay.Node], list[str]] = {}
        for node_type, key in wanted:
            by_type.setdefault(node_type, []).append(key)
        found = await asyncio.gather(*(_resolve_nodes(info, node_type, node_keys)
                                       for node_type, node_keys in by_type.items()))
        in_order = {node_type: iter(nodes) for node_type, nodes in zip(by_type, found, strict=True)}
        return [next(in_order[node_type]) for node_type, _ in wanted]

    @strawberry.field(description="Liveness of the gateway itself (see /readyz for the sources).")
    def health(self) -> Health:
        return Health(status="ok")

    @strawberry.field(description="A customer by global id or by ERP customer number.")
    async def customer(self, info: GatewayInfo,
                       id: Annotated[strawberry.ID | None, strawberry.argument(
                           description="The customer's global id (`Customer.id`). Give this or `number`.")] = None,
                       number: Annotated[str | None, strawberry.argument(
                           description="The ERP customer number, e.g. \"100001\". Give this or `id`.")] = None,
                       ) -> Customer | None:
        if (id is None) == (number is None):
            raise bad_input("give exactly one of `id` and `number`")
        key = (typed_id_argument(id, "Customer", customers.KEY, "id") if id is not None
               else key_argument(str(number), keys.CUSTOMER_NUMBER, "number"))
        await customers.prefetch(info, [key])
        return (await customers.by_keys(info, [key]))[0]

    @strawberry.field(description="Customers from the CRM, by name.")
    async def customers(self, info: GatewayInfo, first: First = 20, after: After = None,
                        filter: Annotated[CustomerFilter | None, strawberry.argument(
                            description="Only the customers that match every condition given.")] = None,
                        ) -> Connection[Customer] | None:
        query = CustomerQuery(first=page_size(info, first), after=after,
                              text=filter.name if filter else None, segment=filter.segment if filter else None)
        found, cursors, has_next = await customers.page(info, query)
        return to_connection(Slice(tuple(found), tuple(cursors), has_next), lambda c: c)

    @strawberry.field(description="An order by its ERP order number.")
    async def order(self, info: GatewayInfo,
                    number: Annotated[str, strawberry.argument(
                        description="The ERP order number, digits only, e.g. \"5000001\".")]) -> Order | None:
        order_number = key_argument(number, keys.ORDER_NUMBER, "number")
        return (await Order.resolve_nodes(info=info, node_ids=[str(order_number)]))[0]

    @strawberry.field(description="Orders, newest first.")
    async def orders(self, info: GatewayInfo, first: First = 20, after: After = None,
                     filter: Annotated[OrderListFilter | None, strawberry.argument(
                         description="Only the orders that match every condition given.")] = None,
                     ) -> Connection[Order] | None:
        query = OrderQuery(
            first=page_size(info, first), after=after,
            statuses=tuple(filter.statuses or ()) if filter else (),
            placed_from=filter.placed_from if filter else None, placed_to=filter.placed_to if filter else None,
            customer=typed_id_argument(filter.customer, "Customer", customers.KEY, "filter.customer")
            if filter and filter.customer is not None else None)
        if query.customer and query.customer.startswith(customers.CRM_PREFIX):
            ORDER_CURSOR.after(after)  # a cursor it did not issue is refused here too
            return to_connection(Slice.empty(), Order.of)  # a CRM-only customer has no ERP orders
        result = await info.context.services.erp.order_page(query)
        # The page's customers and lines are read now, while the orders are being resolved, not after; the
        # customers first, as the CRM is the slower system.
        await Order.prefetch_customers(info, result.items, at=("edges", "node"))
        Order.prefetch(info, result.items, at=("edges", "node"))
        await send()
        return to_connection(result, Order.of)

    @strawberry.field(description="A product by SKU.")
    async def product(self, info: GatewayInfo,
                      sku: Annotated[str, strawberry.argument(
                          description="The SKU (the ERP item number), e.g. \"BRG00042\".")]) -> Product | None:
        key = key_argument(sku, keys.SKU, "sku")
        Product.prefetch(info, [key])
        return await Product.load(info, key)

    @strawberry.field(description="Products, in SKU order.")
    async def products(self, info: GatewayInfo, first: First = 20, after: After = None,
                       filter: Annotated[ProductFilter | None, strawberry.argument(
                           description="Only the products that match every condition given.")] = None,
                       ) -> Connection[Product] | None:
        query = ItemQuery(first=page_size(info, first), after=after, text=filter.text if filter else None)
        result = await info.context.services.erp.item_page(query)
        return to_connection(result, Product.of)

    @strawberry.field(description="Every warehouse in the ERP's warehouse table (WHSMAS).")
    async def warehouses(self, info: GatewayInfo) -> list[Warehouse] | None:
        found = await info.context.services.erp.warehouses()
        return [Warehouse.of(w) for w in found.values()]

    @strawberry.field(description="Partners, optionally of one kind.")
    async def partners(self, info: GatewayInfo,
                       kind: Annotated[PartnerKind | None, strawberry.argument(
                           description="Only partners of this kind; null: suppliers and carriers.")] = None,
                       ) -> list[Partner] | None:
        found = await info.context.services.erp.vendors()
        return [Partner.of(v) for v in found.values() if kind is None or v.kind == kind]

    @strawberry.field(description="A partner by its vendor code.")
    async def partner(self, info: GatewayInfo,
                      code: Annotated[str, strawberry.argument(
                          description="The ERP vendor code, e.g. \"V00002\".")]) -> Partner | None:
        key = key_argument(code, keys.VENDOR_CODE, "code")
        return (await Partner.resolve_nodes(info=info, node_ids=[key]))[0]

    @strawberry.field(description="Purchase orders from the supplier portal, newest first.")
    async def purchase_orders(self, info: GatewayInfo, first: First = 20, after: After = None,
                              filter: Annotated[PurchaseOrderFilter | None, strawberry.argument(
                                  description="Only the purchase orders that match every condition given.")] = None,
                              ) -> Connection[PurchaseOrder] | None:
        partner = (key_argument(filter.partner, keys.VENDOR_CODE, "filter.partner")
                   if filter and filter.partner is not None else None)
        supplier = purchase_order_supplier_filter(info.context.principal, partner)
        query = PurchaseOrderQuery(first=page_size(info, first), after=after, supplier=supplier,
                                   status=filter.status if filter else None)
        result = await info.context.services.supplier.purchase_order_page(query)
        return to_connection(result, PurchaseOrder.of)

    @strawberry.field(description="The audit trail, newest first (needs `audit:read`).")
    async def audit_events(self, info: GatewayInfo, first: First = 20, after: After = None,
                           filter: Annotated[AuditEventFilter | None, strawberry.argument(
                               description="Only the events that match every condition given.")] = None,
                           ) -> Connection[AuditEvent] | None:
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
    async def shipment(self, info: GatewayInfo,
                       tracking_number: Annotated[str, strawberry.argument(
                           description="The logistics provider's tracking number.")]) -> Shipment | None:
        key = key_argument(tracking_number, keys.TRACKING_NUMBER, "trackingNumber")
        return (await Shipment.resolve_nodes(info=info, node_ids=[key]))[0]

    @strawberry.field(description="Business operations' sagas, newest first (needs `operations:read`): those "
                                  "`NEEDS_ATTENTION` are the ones a person must look at.")
    async def sagas(self, info: GatewayInfo, first: First = 20, after: After = None,
                    states: Annotated[list[SagaState] | None, strawberry.argument(
                        description="Only sagas in one of these states.")] = None,
                    ) -> Connection[Saga]:
        info.context.calls.uncacheable = True
        size = page_size(info, first)
        position = SAGA_CURSOR.after(after)
        after_row = None
        if position is not None:
            started, saga_id = str(position[0]), str(position[1])
            if not started.isascii() or not started.isdigit():
                raise bad_input("The `after` cursor is not one this API issued")
            after_row = (int(started), saga_id)
        rows = await ops.operations_of(info).list([SagaState(s) for s in states or ()], size + 1, after_row)
        page = rows[:size]
        return to_connection(Slice(tuple(page), tuple(SAGA_CURSOR.encode(str(r.created_ms), r.id) for r in page),
                                   len(rows) > size), Saga.of_row)

    @strawberry.field(description="One saga by its id (needs `operations:read`).")
    async def saga(self, info: GatewayInfo, id: Annotated[strawberry.ID, strawberry.argument(
                       description="The saga's id (`Saga.id`).")]) -> Saga | None:
        info.context.calls.uncacheable = True
        text = str(id).strip()
        if not (len(text) == 32 and all(c in "0123456789abcdef" for c in text)):
            raise bad_input("`id` must be a saga id (32 hexadecimal digits)")
        row = await ops.operations_of(info).get(text)
        return None if row is None else Saga.of_row(row)
