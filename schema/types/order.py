"""Orders, their lines, and the shipments that carry them."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from resolvers import customer as customers
from resolvers.permissions import check_node_type, visible_shipments
from resolvers.prefetch import may_resolve, prefetch_many, selects
from schema.types.common import NOT_LOADED, GatewayInfo, Money, OrderStatus, ShipmentStatus, load_node, load_nodes
from sources.erp import ErpOrder, ErpOrderLine
from sources.keys import ORDER_NUMBER
from sources.partners import Shipment as ShipmentRecord
from sources.partners import TrackingEvent as TrackingEventRecord

if TYPE_CHECKING:
    from schema.types.customer import Customer
    from schema.types.partner import Partner
    from schema.types.product import Product, Warehouse

CustomerRef = Annotated["Customer", strawberry.lazy("schema.types.customer")]
ProductRef = Annotated["Product", strawberry.lazy("schema.types.product")]
WarehouseRef = Annotated["Warehouse", strawberry.lazy("schema.types.product")]
PartnerRef = Annotated["Partner", strawberry.lazy("schema.types.partner")]


@strawberry.type(description="One line of an order.")
class OrderLine:
    record: strawberry.Private[ErpOrderLine]
    line_number: int = strawberry.field(description="The line's number within the order (ERP ORDDTL.ODLINE).")
    quantity: int = strawberry.field(description="Ordered quantity, in the product's `unitOfMeasure` "
                                                 "(ERP ORDDTL.ODQORD).")
    unit_price: Money = strawberry.field(description="Price of one unit on this order, in the order's currency "
                                                     "(ERP ORDDTL.ODUPRC, stored in cents).")
    amount: Money = strawberry.field(description="Quantity times unit price.")
    #: The product, when Order.lines resolved it with the other lines' (NOT_LOADED: the field loads it).
    preloaded_product: strawberry.Private[object] = NOT_LOADED

    @classmethod
    def of(cls, r: ErpOrderLine) -> OrderLine:
        price = r.unit_price
        return cls(record=r, line_number=r.line, quantity=r.quantity,
                   unit_price=Money(amount=price.amount, currency=price.currency),
                   amount=Money(amount=price.amount * r.quantity, currency=price.currency))

    @strawberry.field(description="The product ordered, from the ERP item master; null if the item master no longer "
                                  "has the item.")
    def product(self, info: GatewayInfo) -> ProductRef | None:
        if self.preloaded_product is not NOT_LOADED:
            return self.preloaded_product  # type: ignore[return-value]
        return self._product(info)  # type: ignore[return-value]  # an awaitable: GraphQL awaits it

    async def _product(self, info: GatewayInfo) -> Product | None:
        from schema.types.product import Product

        Product.prefetch(info, [self.record.item])
        return await Product.load(info, self.record.item)


@strawberry.type(description="An ERP sales order.")
class Order(relay.Node):
    key: relay.NodeID[str]
    record: strawberry.Private[ErpOrder]
    number: str = strawberry.field(description="The ERP order number (ORDHDR.OHORNO), digits only, e.g. \"5000001\"; "
                                               "what `order(number:)` takes.")
    status: OrderStatus = strawberry.field(description="Where the order is in its life (ERP ORDHDR.OHSTAT).")
    placed_at: datetime.date = strawberry.field(description="The day the order was placed.")
    total: Money = strawberry.field(description="Order total as the ERP holds it (ORDHDR.OHTOTL, stored in cents), "
                                                "in the order's currency.")

    @classmethod
    def of(cls, record: ErpOrder) -> Order:
        return cls(key=str(record.number), record=record, number=str(record.number), status=record.status,
                   placed_at=record.placed,
                   total=Money(amount=record.total.amount, currency=record.total.currency))

    @staticmethod
    def prefetch(info: GatewayInfo, orders: Iterable[ErpOrder], *, at: tuple[str, ...]) -> None:
        """Start the loads the selected fields of these orders (at path `at`) will make: their lines and,
        in the same wave, the products on them (resolvers.prefetch)."""
        if not (selects(info, *at, "lines") and may_resolve(info, "Order.lines")):
            return
        numbers = [order.number for order in orders]
        prefetch_many(info, info.context.services.erp.lines_of_orders, numbers)
        products = (*at, "lines", "product")
        if selects(info, *products) and may_resolve(info, "OrderLine.product"):
            from schema.types.product import Product

            Product.prefetch_order(info, numbers, at=products)

    @staticmethod
    async def prefetch_customers(info: GatewayInfo, orders: Iterable[ErpOrder], *, at: tuple[str, ...]) -> None:
        """Start the loads the selected fields of these orders' customers (at path `at`) will make."""
        if selects(info, *at, "customer") and may_resolve(info, "Order.customer"):
            await customers.prefetch(info, [order.customer for order in orders], at=(*at, "customer"))

    @strawberry.field(description="Who placed the order: the ERP customer, with its CRM record when the two are "
                                  "linked.")
    async def customer(self, info: GatewayInfo) -> CustomerRef | None:
        index = await info.context.services.crosswalk.index()
        return customers.from_erp_number(index, self.record.customer)

    @strawberry.field(description="The order's lines, by line number.")
    async def lines(self, info: GatewayInfo) -> list[OrderLine] | None:
        ctx = info.context
        lines = [OrderLine.of(line) for line in await ctx.loaders.load(ctx.services.erp.lines_of_orders,
                                                                        self.record.number) or ()]
        if lines and selects(info, "product") and may_resolve(info, "OrderLine.product"):
            from schema.types.product import Product

            # The lines' products (and their stock) in one await, not one coroutine per line and product.
            products = await Product.of_order(info, self.record.number, [line.record.item for line in lines],
                                              at=("product",))
            if products is not None:
                for line, product in zip(lines, products, strict=True):
                    line.preloaded_product = product  # None too: an item the item master does not know
        return lines

    @strawberry.field(description="The warehouse that ships the order.")
    async def warehouse(self, info: GatewayInfo) -> WarehouseRef | None:
        from schema.types.product import Warehouse

        if self.record.warehouse is None:
            return None
        return await load_node(info, info.context.services.erp.warehouses, self.record.warehouse, Warehouse.of)

    @strawberry.field(description="Shipments of this order, from the logistics provider.")
    async def shipments(self, info: GatewayInfo) -> list[Shipment] | None:
        ctx = info.context
        found = await ctx.loaders.load(ctx.services.logistics.shipments_for_orders, self.record.number)
        return [Shipment.of(s) for s in visible_shipments(ctx.principal, found or ())]

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[Order | None]:
        check_node_type(info, "Order")
        numbers = [ORDER_NUMBER.parse(k) for k in node_ids]  # checked by the caller: never malformed here
        return await load_nodes(info, info.context.services.erp.orders, numbers, cls.of)


@strawberry.type(description="One scan of a shipment.")
class TrackingEvent:
    at: datetime.datetime = strawberry.field(description="When the scan happened (UTC).")
    status: ShipmentStatus = strawberry.field(description="The shipment's status from this scan on.")
    location: str | None = strawberry.field(description="Where it was scanned, as the carrier names the place; "
                                                        "null if not reported.")

    @classmethod
    def of(cls, r: TrackingEventRecord) -> TrackingEvent:
        return cls(at=r.at, status=r.status, location=r.location)


@strawberry.type(description="A parcel or freight shipment, as the logistics provider tracks it.")
class Shipment(relay.Node):
    key: relay.NodeID[str]
    record: strawberry.Private[ShipmentRecord]

    @classmethod
    def of(cls, record: ShipmentRecord) -> Shipment:
        return cls(key=record.tracking_number, record=record)

    @strawberry.field(description="The logistics provider's tracking number; what `shipment(trackingNumber:)` takes.")
    def tracking_number(self) -> str:
        return self.record.tracking_number

    @strawberry.field(description="Where the shipment is now, by the provider's latest scan.")
    def status(self) -> ShipmentStatus:
        return self.record.status

    @strawberry.field(description="Estimated time of arrival.")
    def eta(self) -> datetime.datetime | None:
        return self.record.eta

    @strawberry.field(description="Every scan so far, in the order the provider reports them.")
    def events(self) -> list[TrackingEvent]:
        return [TrackingEvent.of(e) for e in self.record.events]

    @strawberry.field(description="The carrier that transports it, from the ERP's vendor master.")
    async def carrier(self, info: GatewayInfo) -> PartnerRef | None:
        from schema.types.partner import Partner

        return await Partner.load(info, self.record.carrier)

    @strawberry.field(description="The sales order it delivers (the provider's reference SO-<number>).")
    async def order(self, info: GatewayInfo) -> Order | None:
        return await load_node(info, info.context.services.erp.orders, self.record.order, Order.of)

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[Shipment | None]:
        check_node_type(info, "Shipment")
        principal = info.context.principal
        found = await load_nodes(info, info.context.services.logistics.shipments, node_ids, cls.of)
        return [s if s is not None and visible_shipments(principal, [s.record]) else None for s in found]
