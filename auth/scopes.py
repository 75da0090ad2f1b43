"""The scopes the gateway knows, and which roles grant them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CUSTOMERS_READ = "customers:read"
CUSTOMERS_PII = "customers:pii"
CUSTOMERS_WRITE = "customers:write"
ORDERS_READ = "orders:read"
INVENTORY_READ = "inventory:read"
PARTNERS_READ = "partners:read"
OFFERS_READ = "offers:read"
PURCHASE_ORDERS_READ = "purchase_orders:read"
SHIPMENTS_READ = "shipments:read"
AUDIT_READ = "audit:read"
ORDERS_WRITE = "orders:write"
SHIPMENTS_WRITE = "shipments:write"
PURCHASE_ORDERS_WRITE = "purchase_orders:write"
PURCHASE_ORDERS_CONFIRM = "purchase_orders:confirm"
OPERATIONS_READ = "operations:read"

ALL_SCOPES = frozenset({CUSTOMERS_READ, CUSTOMERS_PII, CUSTOMERS_WRITE, ORDERS_READ, INVENTORY_READ, PARTNERS_READ,
                        OFFERS_READ, PURCHASE_ORDERS_READ, SHIPMENTS_READ, AUDIT_READ, ORDERS_WRITE, SHIPMENTS_WRITE,
                        PURCHASE_ORDERS_WRITE, PURCHASE_ORDERS_CONFIRM, OPERATIONS_READ})

#: Scopes a partner token may carry: never customer data, orders, internal writes or the audit log. A supplier
#: may confirm its own purchase orders.
PARTNER_SCOPES = frozenset({INVENTORY_READ, PARTNERS_READ, OFFERS_READ, PURCHASE_ORDERS_READ, SHIPMENTS_READ,
                            PURCHASE_ORDERS_CONFIRM})

DEFAULT_ROLES: Mapping[str, frozenset[str]] = {
    "sales": frozenset({CUSTOMERS_READ, CUSTOMERS_PII, CUSTOMERS_WRITE, ORDERS_READ, INVENTORY_READ, PARTNERS_READ,
                        ORDERS_WRITE}),
    "ops": frozenset({INVENTORY_READ, ORDERS_READ, PARTNERS_READ, OFFERS_READ, PURCHASE_ORDERS_READ,
                      SHIPMENTS_READ, ORDERS_WRITE, SHIPMENTS_WRITE, PURCHASE_ORDERS_WRITE, OPERATIONS_READ}),
    "support": frozenset({CUSTOMERS_READ, ORDERS_READ, SHIPMENTS_READ}),
    "admin": ALL_SCOPES,
}


def unknown(scopes: Iterable[str]) -> set[str]:
    return set(scopes) - ALL_SCOPES


def scopes_for_roles(roles: Iterable[str], role_map: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The union of the scopes of known roles; unknown roles grant nothing."""
    granted: set[str] = set()
    for role in roles:
        granted.update(role_map.get(role, ()))
    return frozenset(granted & ALL_SCOPES)
