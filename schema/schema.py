"""The assembled schema."""

from __future__ import annotations

from functools import cache

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.permission import PermissionExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types.base import get_object_definition
from strawberry.types.execution import ExecutionContext

from resolvers.permissions import FIELD_SCOPES, Scopes
from schema.executor import GatewayExecutionContext
from schema.mutation import Mutation
from schema.query import Query
from schema.types.customer import Customer
from schema.types.order import Order, OrderLine, Shipment
from schema.types.partner import Partner, PurchaseOrder
from schema.types.product import Product, StockLevel, SupplierOffer, Warehouse

NODE_TYPES = (Customer, Order, Shipment, Product, Warehouse, Partner, PurchaseOrder)
OTHER_TYPES = (OrderLine, SupplierOffer, StockLevel)
#: Guarded fields of later issues, not in the schema yet.
OPTIONAL_COORDINATES: frozenset[str] = frozenset()


def _guard_fields(config: StrawberryConfig) -> None:
    """Attach the scope checks of resolvers.permissions.FIELD_SCOPES to their fields (once per process)."""
    unmatched = set(FIELD_SCOPES)
    for cls in (Query, Mutation, *NODE_TYPES, *OTHER_TYPES):
        definition = get_object_definition(cls, strict=True)
        type_name = definition.name
        for field in definition.fields:
            coordinate = f"{type_name}.{config.name_converter.get_graphql_name(field)}"
            if coordinate in FIELD_SCOPES:
                unmatched.discard(coordinate)
                if not any(isinstance(e, PermissionExtension) for e in field.extensions):
                    field.extensions.append(PermissionExtension([Scopes(FIELD_SCOPES[coordinate])],
                                                                use_directives=False))
    unmatched -= OPTIONAL_COORDINATES
    if unmatched:
        raise RuntimeError(f"FIELD_SCOPES names fields the schema does not have: {sorted(unmatched)}")


_built: list[tuple[type[SchemaExtension], ...]] = []


@cache
def build_schema(extensions: tuple[type[SchemaExtension], ...] = ()) -> strawberry.Schema:
    """The schema, built once per process: strawberry's relay fields bind to the first schema built."""
    if _built and _built[0] != extensions:
        raise RuntimeError(f"the schema was built with {_built[0]}; it cannot be rebuilt with {extensions}")
    _built.append(extensions)
    # @defer and @stream (gateway.incremental): graphql-core's incremental executor runs every operation; one
    # without either directive answers exactly as before.
    config = StrawberryConfig(disable_field_suggestions=True, enable_experimental_incremental_execution=True)
    _guard_fields(config)
    return GatewaySchema(query=Query, mutation=Mutation, types=NODE_TYPES, extensions=list(extensions),
                         config=config, execution_context_class=GatewayExecutionContext)


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Errors are logged by the gateway's error extension, once and with the request id."""
