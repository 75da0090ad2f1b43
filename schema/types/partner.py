"""Partners (suppliers and carriers) and the purchase orders placed with suppliers."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal

import strawberry
from strawberry import relay

from resolvers.permissions import check_node_type, visible_purchase_orders
from schema.types.common import GatewayInfo, Money, PartnerKind, PurchaseOrderStatus, load_node, load_nodes
from schema.types.product import Product
from sources.erp import ErpVendor
from sources.partners import PurchaseOrder as PurchaseOrderRecord
from sources.partners import PurchaseOrderLine as PurchaseOrderLineRecord


@strawberry.type(description="A supplier or logistics provider, as the ERP's vendor master knows it.")
class Partner(relay.Node):
    key: relay.NodeID[str]
    code: str = strawberry.field(description="The ERP vendor code (VENMAS.VNVNNO), e.g. \"V00002\"; what "
                                             "`partner(code:)` takes and what partner API tokens are bound to.")
    name: str = strawberry.field(description="The partner's name, from the ERP's vendor master (VENMAS.VNNAME).")
    kind: PartnerKind = strawberry.field(description="Supplier or carrier (ERP VENMAS.VNTYPE).")
    country: str | None = strawberry.field(description="Two-letter ISO 3166 country code, e.g. DE; null if the ERP "
                                                       "does not say.")

    @classmethod
    def of(cls, r: ErpVendor) -> Partner:
        return cls(key=r.number, code=r.number, name=r.name, kind=r.kind, country=r.country)

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[Partner | None]:
        check_node_type(info, "Partner")
        return await load_nodes(info, info.context.services.erp.vendors, node_ids, cls.of)

    @classmethod
    async def load(cls, info: GatewayInfo, code: str) -> Partner | None:
        return await load_node(info, info.context.services.erp.vendors, code, cls.of)


@strawberry.type(description="One product on a purchase order.")
class PurchaseOrderLine:
    record: strawberry.Private[PurchaseOrderLineRecord]
    currency: strawberry.Private[str]

    @strawberry.field(description="Ordered quantity, in the product's `unitOfMeasure`.")
    def quantity(self) -> int:
        return self.record.quantity

    @strawberry.field(description="Agreed price of one unit, in the purchase order's currency.")
    def unit_price(self) -> Money:
        return Money(amount=self.record.unit_price, currency=self.currency)

    @strawberry.field(description="The product ordered; null if the ERP's item master does not have the SKU.")
    async def product(self, info: GatewayInfo) -> Product | None:
        return await Product.load(info, self.record.item)


@strawberry.type(description="A purchase order placed with a supplier, as the supplier portal reports it.")
class PurchaseOrder(relay.Node):
    key: relay.NodeID[str]
    record: strawberry.Private[PurchaseOrderRecord]

    @classmethod
    def of(cls, record: PurchaseOrderRecord) -> PurchaseOrder:
        return cls(key=record.number, record=record)

    @strawberry.field(description="The supplier portal's purchase order number, e.g. \"PO-2024-000123\".")
    def number(self) -> str:
        return self.record.number

    @strawberry.field(description="Where the purchase order is, as the supplier portal reports it.")
    def status(self) -> PurchaseOrderStatus:
        return self.record.status

    @strawberry.field(description="The day it was placed with the supplier.")
    def created_on(self) -> datetime.date:
        return self.record.created_on

    @strawberry.field(description="The day the supplier expects to deliver; null until the supplier gives one.")
    def expected_on(self) -> datetime.date | None:
        return self.record.expected_on

    @strawberry.field(description="The products ordered, as the supplier portal lists them.")
    def lines(self) -> list[PurchaseOrderLine]:
        return [PurchaseOrderLine(record=line, currency=self.record.currency) for line in self.record.lines]

    @strawberry.field(description="Sum of quantity times unit price over the lines.")
    def total(self) -> Money:
        amount = sum((line.unit_price * line.quantity for line in self.record.lines), Decimal(0))
        return Money(amount=amount, currency=self.record.currency)

    @strawberry.field(description="The supplier it was placed with.")
    async def partner(self, info: GatewayInfo) -> Partner | None:
        return await Partner.load(info, self.record.supplier)

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[PurchaseOrder | None]:
        check_node_type(info, "PurchaseOrder")
        principal = info.context.principal
        found = await load_nodes(info, info.context.services.supplier.purchase_orders, node_ids, cls.of)
        return [po if po is not None and visible_purchase_orders(principal, [po.record]) else None for po in found]
