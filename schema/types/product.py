"""Products, their stock per warehouse, and what suppliers offer for them."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from resolvers.permissions import (
    check_node_type,
    forbidden,
    may_see_stock,
    visible_offers,
    visible_purchase_orders,
)
from resolvers.prefetch import may_resolve, prefetch, prefetch_many, selects
from schema.types.common import NOT_LOADED, GatewayInfo, Money, load_node, load_nodes
from sources.erp import ErpItem, ErpStock, ErpWarehouse
from sources.errors import SourceError
from sources.partners import SupplierOffer as OfferRecord

if TYPE_CHECKING:
    from schema.types.partner import Partner, PurchaseOrder

WAREHOUSES = "all"  # the one key of the warehouse table loader
PartnerRef = Annotated["Partner", strawberry.lazy("schema.types.partner")]
PurchaseOrderRef = Annotated["PurchaseOrder", strawberry.lazy("schema.types.partner")]


@strawberry.type(description="A distribution centre.")
class Warehouse(relay.Node):
    key: relay.NodeID[str]
    code: str = strawberry.field(description="The ERP's warehouse code (WHSMAS.WHWHSE), e.g. \"DAL\".")
    name: str = strawberry.field(description="The warehouse's name, from the ERP (WHSMAS.WHDESC).")
    city: str | None = strawberry.field(description="City it is in; null if the ERP does not say.")
    country: str | None = strawberry.field(description="Two-letter ISO 3166 country code, e.g. US; null if the ERP "
                                                       "does not say.")

    @classmethod
    def of(cls, r: ErpWarehouse) -> Warehouse:
        return cls(key=r.code, code=r.code, name=r.name, city=r.city, country=r.country)

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[Warehouse | None]:
        check_node_type(info, "Warehouse")
        return await load_nodes(info, info.context.services.erp.warehouses, node_ids, cls.of)


@strawberry.type(description="Stock of one product in one warehouse.")
class StockLevel:
    # Plain fields, filled when the level is made: strawberry resolves them without a resolver call each.
    warehouse: Warehouse | None = strawberry.field(description="Where the stock is; null if the ERP's warehouse "
                                                               "table does not know the code.")
    on_hand: int = strawberry.field(description="Physically in the warehouse.")
    allocated: int = strawberry.field(description="Promised to open orders.")
    available: int = strawberry.field(description="On hand minus allocated: what can still be sold.")

    @classmethod
    def of(cls, r: ErpStock, warehouse: Warehouse | None) -> StockLevel:
        return cls(warehouse=warehouse, on_hand=r.on_hand, allocated=r.allocated,
                   available=max(r.on_hand - r.allocated, 0))


@strawberry.type(description="A supplier's current offer for a product.")
class SupplierOffer:
    record: strawberry.Private[OfferRecord]

    @strawberry.field(description="The supplier's price for one unit (in the product's `unitOfMeasure`), in the "
                                  "currency it quotes.")
    def unit_price(self) -> Money:
        return Money(amount=self.record.unit_price.amount, currency=self.record.unit_price.currency)

    @strawberry.field(description="Calendar days from a purchase order to delivery, as the supplier promises.")
    def lead_time_days(self) -> int:
        return self.record.lead_time_days

    @strawberry.field(description="How many units the supplier can deliver at this price now.")
    def available_quantity(self) -> int:
        return self.record.available_quantity

    @strawberry.field(description="The last day the offer holds (inclusive).")
    def valid_until(self) -> datetime.date:
        return self.record.valid_until

    @strawberry.field(description="The supplier making the offer.")
    async def partner(self, info: GatewayInfo) -> PartnerRef | None:
        from schema.types.partner import Partner

        return await Partner.load(info, self.record.supplier)

    @strawberry.field(description="The product offered; null if the ERP's item master does not have the SKU.")
    async def product(self, info: GatewayInfo) -> Product | None:
        return await Product.load(info, self.record.item)


def _levels(found: Iterable[ErpStock], table: dict[str, ErpWarehouse],
            made: dict[str, Warehouse] | None = None) -> list[StockLevel]:
    """Stock levels with their warehouses; `made` shares one Warehouse object per code across calls."""
    made = {} if made is None else made
    levels = []
    for s in found:
        warehouse = made.get(s.warehouse)
        if warehouse is None and (w := table.get(s.warehouse)) is not None:
            warehouse = made[s.warehouse] = Warehouse.of(w)
        levels.append(StockLevel.of(s, warehouse))
    return levels


@strawberry.type(description="An item of the ERP's item master.")
class Product(relay.Node):
    key: relay.NodeID[str]
    record: strawberry.Private[ErpItem]
    sku: str = strawberry.field(description="The stock-keeping unit: the ERP item number (ITMMAS.IMITNO), trimmed; "
                                            "what `product(sku:)` takes.")
    name: str = strawberry.field(description="The item's description from the ERP (ITMMAS.IMDESC), in title case.")
    unit_of_measure: str = strawberry.field(description="The unit quantities and prices count in, as the ERP codes it "
                                                        "(ITMMAS.IMUOM): EA each, BX box, M metre, KG kilogram...")
    list_price: Money = strawberry.field(description="Standard selling price of one unit before any discount (ERP "
                                                     "ITMMAS.IMLPRC, stored in cents).")
    #: Stock levels resolved with a whole list of products (Order.lines); NOT_LOADED: the field loads them.
    preloaded_stock: strawberry.Private[object] = NOT_LOADED

    @classmethod
    async def load(cls, info: GatewayInfo, sku: str) -> Product | None:
        return await load_node(info, info.context.services.erp.items, sku, cls.of)

    @classmethod
    async def of_order(cls, info: GatewayInfo, order: int, skus: list[str], *,
                       at: tuple[str, ...]) -> list[Product | None] | None:
        """The products on an order's lines (`skus`, in line order), with their stock levels too if selected
        at path `at` (staff only), read by the order's number beside its lines (`prefetch_order`).

        One await for a whole list instead of one per product and one per product's stock: the fields
        below then resolve without a coroutine each. None if the items cannot be read, and no stock if the
        stock cannot: the fields then load (and fail) one by one, so each error lands at its own path.
        """
        ctx = info.context
        services = ctx.services
        Product.prefetch_order(info, [order], at=at)
        Product.prefetch_offers(info, skus, at=at)
        try:
            items = await ctx.loaders.load(services.erp.items_of_orders, order) or {}
        except SourceError:
            return None
        products = [None if (item := items.get(sku)) is None else cls.of(item) for sku in skus]
        if ctx.principal.partner or not selects(info, *at, "stock"):
            return products
        try:
            stock = await ctx.loaders.load(services.erp.stock_of_orders, order) or {}
            table: dict[str, ErpWarehouse] = {}
            if selects(info, *at, "stock", "warehouse"):
                table = await ctx.loaders.load(services.erp.warehouse_table, WAREHOUSES) or {}
        except SourceError:
            return products
        made: dict[str, Warehouse] = {}
        for product in products:
            if product is not None:
                product.preloaded_stock = _levels(stock.get(product.sku, ()), table, made)
        return products

    @classmethod
    def of(cls, item: ErpItem) -> Product:
        return cls(key=item.number, record=item, sku=item.number, name=item.description, unit_of_measure=item.uom,
                   list_price=Money(amount=item.list_price.amount, currency=item.list_price.currency))

    @strawberry.field(description="Stock per warehouse.")
    def stock(self, info: GatewayInfo) -> list[StockLevel] | None:
        if self.preloaded_stock is not NOT_LOADED:
            return self.preloaded_stock  # type: ignore[return-value]
        return self._stock(info)  # type: ignore[return-value]  # an awaitable: GraphQL awaits it

    async def _stock(self, info: GatewayInfo) -> list[StockLevel] | None:
        ctx = info.context
        if ctx.principal.partner:
            offers = await ctx.loaders.load(ctx.services.supplier.offers_for_items, self.record.number)
            if not may_see_stock(ctx.principal, self.record.main_vendor, offers or ()):
                raise forbidden("Partners see stock only of the items they supply")
        found = await ctx.loaders.load(ctx.services.erp.stock_of_items, self.record.number) or ()
        table: dict[str, ErpWarehouse] = {}
        if found and selects(info, "warehouse"):  # loaded with the levels: one await per product, not per level
            table = await ctx.loaders.load(ctx.services.erp.warehouse_table, WAREHOUSES) or {}
        return _levels(found, table)

    @staticmethod
    def prefetch(info: GatewayInfo, skus: Collection[str], *, at: tuple[str, ...] = ()) -> None:
        """Start, with the items' own lookup, the loads the selected fields of these products (at path `at`)
        will make."""
        ctx = info.context
        services = ctx.services
        Product.prefetch_offers(info, skus, at=at)
        if not ctx.principal.partner and selects(info, *at, "stock"):
            prefetch_many(info, services.erp.stock_of_items, skus)
            if skus:
                Product.prefetch_warehouses(info, at=at)

    @staticmethod
    def prefetch_order(info: GatewayInfo, orders: Collection[int], *, at: tuple[str, ...]) -> None:
        """Start reading the products on these orders' lines (at path `at`), and their stock if selected,
        by the orders' numbers: beside the lines, not after them (ErpSource.items_of_orders)."""
        services = info.context.services
        prefetch_many(info, services.erp.items_of_orders, orders)
        if orders and not info.context.principal.partner and selects(info, *at, "stock"):
            prefetch_many(info, services.erp.stock_of_orders, orders)
            Product.prefetch_warehouses(info, at=at)

    @staticmethod
    def prefetch_offers(info: GatewayInfo, skus: Collection[str], *, at: tuple[str, ...]) -> None:
        """Start reading the supplier offers these products' selected fields need: their offers, and for
        partners their stock too, which they see only of items they supply (so stock waits for the offers,
        and nothing is read that this rule might refuse)."""
        wants_offers = selects(info, *at, "offers") and may_resolve(info, "Product.offers")
        if wants_offers or (info.context.principal.partner and selects(info, *at, "stock")):
            prefetch_many(info, info.context.services.supplier.offers_for_items, skus)

    @staticmethod
    def prefetch_warehouses(info: GatewayInfo, *, at: tuple[str, ...]) -> None:
        """Start reading the warehouse table if the stock levels of products at path `at` will name their
        warehouses: it depends on nothing, so it need not wait for the products."""
        if not info.context.principal.partner and selects(info, *at, "stock", "warehouse"):
            prefetch(info, info.context.services.erp.warehouse_table, WAREHOUSES)

    @strawberry.field(description="The main supplier in the item master.")
    async def main_supplier(self, info: GatewayInfo) -> PartnerRef | None:
        from schema.types.partner import Partner

        if self.record.main_vendor is None:
            return None
        return await Partner.load(info, self.record.main_vendor)

    @strawberry.field(description="Current offers from the supplier portal.")
    async def offers(self, info: GatewayInfo) -> list[SupplierOffer] | None:
        ctx = info.context
        found = await ctx.loaders.load(ctx.services.supplier.offers_for_items, self.record.number)
        return [SupplierOffer(record=o) for o in visible_offers(ctx.principal, found or ())]

    @strawberry.field(description="Purchase orders with a line for this product.")
    async def purchase_orders(self, info: GatewayInfo) -> list[PurchaseOrderRef] | None:
        from schema.types.partner import PurchaseOrder

        ctx = info.context
        found = await ctx.loaders.load(ctx.services.supplier.purchase_orders_for_items, self.record.number)
        return [PurchaseOrder.of(po) for po in visible_purchase_orders(ctx.principal, found or ())]

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[Product | None]:
        check_node_type(info, "Product")
        return await load_nodes(info, info.context.services.erp.items, node_ids, cls.of)
