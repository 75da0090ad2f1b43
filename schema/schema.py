"""The assembled schema."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from schema.query import Query
from schema.types.customer import Customer
from schema.types.order import Order, Shipment
from schema.types.partner import Partner, PurchaseOrder
from schema.types.product import Product, Warehouse

NODE_TYPES = (Customer, Order, Shipment, Product, Warehouse, Partner, PurchaseOrder)


def build_schema(extensions: Sequence[type[SchemaExtension] | SchemaExtension] = ()) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query, types=NODE_TYPES, extensions=list(extensions),
        config=StrawberryConfig(disable_field_suggestions=True),
    )
