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

ALL_SCOPES = frozenset({CUSTOMERS_READ, CUSTOMERS_PII, CUSTOMERS_WRITE, ORDERS_READ, INVENTORY_READ, PARTNERS_READ,
                        OFFERS_READ, PURCHASE_ORDERS_READ, SHIPMENTS_READ, AUDIT_READ})

#: Scopes a partner token may carry: never customer data, orders or the audit log.
PARTNER_SCOPES = frozenset({INVENTORY_READ, PARTNERS_READ, OFFERS_READ, PURCHASE_ORDERS_READ, SHIPMENTS_READ})

DEFAULT_ROLES: Mapping[str, frozenset[str]] = {
    "sales": frozenset({CUSTOMERS_READ, CUSTOMERS_PII, CUSTOMERS_WRITE, ORDERS_READ, INVENTORY_READ, PARTNERS_READ}),
    "ops": frozenset({INVENTORY_READ, ORDERS_READ, PARTNERS_READ, OFFERS_READ, PURCHASE_ORDERS_READ,
                      SHIPMENTS_READ}),
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
