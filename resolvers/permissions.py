"""Who may see what: the one table of field scopes, the node read scopes, and the partner row rules.

Every rule here has a test in tests/security that fails when the rule is removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import GraphQLError
from strawberry.permission import BasePermission
from strawberry.types import Info

from auth import scopes as s
from auth.principal import Principal
from sources.partners import PurchaseOrder, Shipment, SupplierOffer

#: GraphQL field -> the scopes it needs. A denied field is null with a FORBIDDEN error; the rest resolves.
FIELD_SCOPES: Mapping[str, frozenset[str]] = {
    "Query.customer": frozenset({s.CUSTOMERS_READ}),
    "Query.customers": frozenset({s.CUSTOMERS_READ}),
    "Query.order": frozenset({s.ORDERS_READ}),
    "Query.orders": frozenset({s.ORDERS_READ}),
    "Query.product": frozenset({s.INVENTORY_READ}),
    "Query.products": frozenset({s.INVENTORY_READ}),
    "Query.warehouses": frozenset({s.INVENTORY_READ}),
    "Query.partner": frozenset({s.PARTNERS_READ}),
    "Query.partners": frozenset({s.PARTNERS_READ}),
    "Query.purchaseOrders": frozenset({s.PURCHASE_ORDERS_READ}),
    "Query.shipment": frozenset({s.SHIPMENTS_READ}),
    # Personal and credit data.
    "Customer.email": frozenset({s.CUSTOMERS_PII}),
    "Customer.phone": frozenset({s.CUSTOMERS_PII}),
    "Customer.contactName": frozenset({s.CUSTOMERS_PII}),
    "Customer.creditLimit": frozenset({s.CUSTOMERS_PII}),
    "Customer.balance": frozenset({s.CUSTOMERS_PII}),
    "Customer.availableCredit": frozenset({s.CUSTOMERS_PII}),
    "Customer.interactions": frozenset({s.CUSTOMERS_PII}),
    # Relations into another area need that area's scope too.
    "Customer.orders": frozenset({s.ORDERS_READ}),
    "Order.customer": frozenset({s.CUSTOMERS_READ}),
    "Order.shipments": frozenset({s.SHIPMENTS_READ}),
    "OrderLine.product": frozenset({s.INVENTORY_READ}),
    "Shipment.order": frozenset({s.ORDERS_READ}),
    "Shipment.carrier": frozenset({s.PARTNERS_READ}),
    "Product.mainSupplier": frozenset({s.PARTNERS_READ}),
    "Product.offers": frozenset({s.OFFERS_READ}),
    "Product.purchaseOrders": frozenset({s.PURCHASE_ORDERS_READ}),
    "SupplierOffer.partner": frozenset({s.PARTNERS_READ}),
    "PurchaseOrder.partner": frozenset({s.PARTNERS_READ}),
    "Query.auditEvents": frozenset({s.AUDIT_READ}),
    "Query.sagas": frozenset({s.OPERATIONS_READ}),
    "Query.saga": frozenset({s.OPERATIONS_READ}),
    "Mutation.updateCustomerContact": frozenset({s.CUSTOMERS_WRITE, s.CUSTOMERS_PII}),
    "Mutation.placeOrder": frozenset({s.ORDERS_WRITE}),
    "Mutation.cancelOrder": frozenset({s.ORDERS_WRITE}),
    "Mutation.bookShipment": frozenset({s.SHIPMENTS_WRITE}),
    "Mutation.createPurchaseOrder": frozenset({s.PURCHASE_ORDERS_WRITE}),
    "Mutation.receivePurchaseOrder": frozenset({s.PURCHASE_ORDERS_WRITE}),
    "Mutation.confirmPurchaseOrder": frozenset({s.PURCHASE_ORDERS_CONFIRM}),
}

#: Node type -> the scope `node(id:)` needs to return it.
NODE_SCOPES: Mapping[str, str] = {
    "Customer": s.CUSTOMERS_READ, "Order": s.ORDERS_READ, "Product": s.INVENTORY_READ,
    "Warehouse": s.INVENTORY_READ, "Partner": s.PARTNERS_READ, "PurchaseOrder": s.PURCHASE_ORDERS_READ,
    "Shipment": s.SHIPMENTS_READ,
}


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def principal_of(info: Info[Any, Any]) -> Principal:
    principal: Principal = info.context.principal
    return principal


class Scopes(BasePermission):
    """A strawberry permission: the principal must hold every one of `required`."""

    error_extensions = {"code": "FORBIDDEN"}

    def __init__(self, required: frozenset[str]) -> None:
        self.required = required
        self.message = f"Needs the scope {', '.join(sorted(required))}"

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        return principal_of(info).has(*self.required)


def check_node_type(info: Info[Any, Any], type_name: str) -> None:
    scope = NODE_SCOPES[type_name]
    if not principal_of(info).has(scope):
        raise forbidden(f"Needs the scope {scope} to read {type_name} objects")


# --- partner row rules: a partner sees its own rows only ---------------------------------------------

def visible_offers(principal: Principal, offers: Iterable[SupplierOffer]) -> list[SupplierOffer]:
    return [o for o in offers if not principal.partner or o.supplier == principal.partner_id]


def visible_purchase_orders(principal: Principal, orders: Iterable[PurchaseOrder]) -> list[PurchaseOrder]:
    return [po for po in orders if not principal.partner or po.supplier == principal.partner_id]


def visible_shipments(principal: Principal, shipments: Iterable[Shipment]) -> list[Shipment]:
    return [sh for sh in shipments if not principal.partner or sh.carrier == principal.partner_id]


def may_see_stock(principal: Principal, main_vendor: str | None, offers: Iterable[SupplierOffer]) -> bool:
    """Partners see stock only of items they supply: as the main vendor or with a current offer."""
    if not principal.partner:
        return True
    return main_vendor == principal.partner_id or any(o.supplier == principal.partner_id for o in offers)


def purchase_order_supplier_filter(principal: Principal, requested: str | None) -> str | None:
    """The supplier a purchase-order list is restricted to. Part of the source query, hence of its cache key."""
    if not principal.partner:
        return requested
    if requested is not None and requested != principal.partner_id:
        raise forbidden("Partners can list only their own purchase orders")
    return principal.partner_id
