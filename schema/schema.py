"""The assembled schema."""

from __future__ import annotations

from functools import cache

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from schema.query import Query
from schema.types.customer import Customer
from schema.types.order import Order, Shipment
from schema.types.partner import Partner, PurchaseOrder
from schema.types.product import Product, Warehouse

NODE_TYPES = (Customer, Order, Shipment, Product, Warehouse, Partner, PurchaseOrder)


@cache
def build_schema(extensions: tuple[type[SchemaExtension], ...] = ()) -> strawberry.Schema:
    """The schema, built once per process and extension set (strawberry's relay fields bind to one schema)."""
    return strawberry.Schema(
        query=Query, types=NODE_TYPES, extensions=list(extensions),
        config=StrawberryConfig(disable_field_suggestions=True),
    )
