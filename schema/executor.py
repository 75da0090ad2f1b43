"""A faster path for the commonest field of all: plain data read straight off its object.

An answer of the 50-order list has some 2,400 fields and most of them are leaves of plain data (an
order's number, a stock level's figure, a warehouse's code) that strawberry reads with `getattr`.
graphql-core still builds a resolve-info object, calls the resolver through strawberry's wrapper,
checks for awaitables and dispatches on the return type for each of them. For such a field (a basic
strawberry field: no resolver, no permission, no arguments, a scalar or enum type) this executor reads
the attribute and coerces it directly. Anything unusual (a null where the type forbids it, a value the
type refuses) goes down graphql-core's own path, which reports it exactly as before.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLField, GraphQLObjectType, Undefined, get_nullable_type, is_leaf_type
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

DEFINITION = "strawberry-definition"

#: GraphQL field -> (python attribute, its nullable leaf type, whether null is allowed); None: not plain.
_plain: dict[int, tuple[str, Any, bool] | None] = {}


def _plain_leaf(field_def: GraphQLField) -> tuple[str, Any, bool] | None:
    found = _plain.get(id(field_def), Undefined)
    if found is not Undefined:
        return found  # type: ignore[return-value]
    strawberry_field = (field_def.extensions or {}).get(DEFINITION)
    plain: tuple[str, Any, bool] | None = None
    leaf = get_nullable_type(field_def.type)
    if (strawberry_field is not None and strawberry_field.is_basic_field and not field_def.args
            and is_leaf_type(leaf) and getattr(strawberry_field, "default_resolver", getattr) is getattr):
        plain = (strawberry_field.python_name, leaf, leaf is field_def.type)
    _plain[id(field_def)] = plain  # the schema is built once per process: its fields live as long
    return plain


class GatewayExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any,
                      position_context: Any) -> Any:
        manager = self.middleware_manager  # strawberry always passes one, empty unless an extension resolves
        if manager is None or not manager._middleware_resolvers:
            field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
            plain = _plain_leaf(field_def) if field_def is not None else None
            if plain is not None and not field_details_list[0].node.arguments:
                name, leaf, nullable = plain
                value = getattr(source, name, Undefined)
                if value is None and nullable:
                    return None
                if value is not None and value is not Undefined and not self.is_awaitable(value):
                    try:
                        coerced = leaf.coerce_output_value(value)
                    except Exception:
                        coerced = None
                    if coerced is not None and coerced is not Undefined:
                        return coerced
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

