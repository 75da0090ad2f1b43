"""Faster paths for the commonest fields of all: plain data read straight off their objects.

An answer of the 50-order list has some 2,400 fields and most of them are leaves of plain data (an
order's number, a stock level's figure, a warehouse's code) that strawberry reads with `getattr`.
graphql-core still builds a resolve-info object, calls the resolver through strawberry's wrapper,
checks for awaitables and dispatches on the return type for each of them. For such a field (a basic
strawberry field: no resolver, no permission, no arguments, a scalar or enum type) this executor reads
the attribute and coerces it directly. Anything unusual (a null where the type forbids it, a value the
type refuses) goes down graphql-core's own path, which reports it exactly as before.

The same goes for whole objects whose selected fields are all such leaves, or objects of that kind
(an amount with its currency, a warehouse's code): the object's answer is built in one go from a plan
made once per selection. If anything on the way is not plain data, the object takes the ordinary path.

A relation that a list resolver already resolved (a line's product, a product's stock levels: see
PRELOADED) counts as plain data too, once the principal holds the scopes of the field's permission; if
it does not, or the relation was not resolved ahead, the ordinary path runs the resolver and the check.

Incremental delivery (`@defer`, `@stream`): graphql-core's incremental executor splits a selection into
the fields of the current part and those of deferred parts, by the deferred fragments each field comes
from. A plan is made only for a selection that belongs wholly to the part being executed and that
streams no list; anything else takes the ordinary path, which does the splitting.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from graphql import (
    ExperimentalIncrementalExecutionResults,
    GraphQLField,
    GraphQLObjectType,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
)
from graphql.execution.incremental.build_execution_plan import get_filtered_defer_usage_set
from graphql.pyutils import RefSet
from strawberry.permission import PermissionExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.permissions import Scopes
from schema.types.common import NOT_LOADED

DEFINITION = "strawberry-definition"

#: id of a GraphQL field -> (the field, kept alive so its id is not reused; (python attribute, its
#: nullable leaf type, whether null is allowed), or None: not plain).
_plain: dict[int, tuple[GraphQLField, tuple[str, Any, bool] | None]] = {}


def _plain_leaf(field_def: GraphQLField) -> tuple[str, Any, bool] | None:
    found = _plain.get(id(field_def))
    if found is not None:
        return found[1]
    strawberry_field = (field_def.extensions or {}).get(DEFINITION)
    plain: tuple[str, Any, bool] | None = None
    leaf = get_nullable_type(field_def.type)
    if (strawberry_field is not None and strawberry_field.is_basic_field and not field_def.args
            and is_leaf_type(leaf) and getattr(strawberry_field, "default_resolver", getattr) is getattr):
        plain = (strawberry_field.python_name, leaf, leaf is field_def.type)
    _plain[id(field_def)] = (field_def, plain)
    return plain


def _coerce(leaf: Any, value: Any) -> Any:
    """A non-null leaf value as the answer carries it, or Undefined if the type refuses it."""
    try:
        coerced = leaf.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced


_NO_DEFERS: RefSet[Any] = RefSet()


def _streamed(node: Any) -> bool:
    """Whether a field carries `@stream` (graphql-core decides, with its `if`, whether it is streamed)."""
    return any(directive.name.value == "stream" for directive in node.directives or ())


#: Resolver fields whose value a list resolver may have set ahead, and the attribute it is kept in.
PRELOADED: dict[tuple[str, str], str] = {("OrderLine", "product"): "preloaded_product",
                                         ("Product", "stock"): "preloaded_stock"}

#: One field of an object plan: response key, attribute, leaf type (None: an object), nullable, sub-plan,
#: the object's is_type_of, scopes the principal must hold (None: none), whether the value is a list.
Step = tuple[str, str, Any, bool, "Plan | None", Any, "frozenset[str] | None", bool]
Plan = tuple[Step, ...]


def _required_scopes(strawberry_field: Any) -> frozenset[str] | None:
    """The scopes a field's permission extensions require; None if it has others (not plannable)."""
    required: set[str] = set()
    for extension in strawberry_field.extensions:
        if not isinstance(extension, PermissionExtension) or extension.fail_silently:
            return None
        for permission in extension.permissions:
            if not isinstance(permission, Scopes):
                return None
            required |= permission.required
    return frozenset(required)


class GatewayExecutionContext(StrawberryGraphQLCoreExecutionContext):
    _plans: dict[tuple[Any, int], tuple[Any, Plan | None]]

    @property
    def _shortcuts(self) -> bool:
        """No extension wraps resolvers (strawberry always passes a manager, empty unless one does)."""
        manager = self.middleware_manager
        return manager is None or not manager._middleware_resolvers

    def _leaf(self, leaf: Any, nullable: bool, value: Any) -> Any:
        """A plain leaf's answer, or Undefined when graphql-core's own path must report on it."""
        if value is None:
            return None if nullable else Undefined
        if value is Undefined or value is NOT_LOADED or self.is_awaitable(value):
            return Undefined
        return _coerce(leaf, value)

    def _fill_list(self, plan: Plan, items: Any, is_type_of: Any, info: Any) -> list[Any] | None:
        """Every item of a list of plain objects, or None if one of them is not."""
        if not isinstance(items, list):
            return None
        filled: list[Any] = []
        for item in items:
            if item is None or (is_type_of is not None and is_type_of(item, info) is not True):
                return None
            one = self._fill(plan, item, info)
            if one is None:
                return None
            filled.append(one)
        return filled

    def _plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Plan | None:
        """How to build this object's answer from plain attributes, or None if some field is not plain."""
        plans = self.__dict__.setdefault("_plans", {})
        # The part being executed (its deferred fragments) decides which fields belong to it.
        part = self.defer_usage_set
        key = (object_type, id(field_details_list), id(part))
        if key in plans:
            known: Plan | None = plans[key][2]
            return known
        plans[key] = (field_details_list, part, None)  # kept alive with the plan, as graphql-core does
        grouped, defers, _ = self.collect_subfields(object_type, field_details_list)
        if defers:
            return None
        steps: list[Step] = []
        for response_key, details in grouped.items():
            node = details[0].node
            field_def = object_type.fields.get(node.name.value)
            if field_def is None or node.arguments or _streamed(node) or not self._in_this_part(details):
                return None
            plain = _plain_leaf(field_def)
            if plain is not None:
                steps.append((response_key, plain[0], plain[1], plain[2], None, None, None, False))
                continue
            strawberry_field = (field_def.extensions or {}).get(DEFINITION)
            if strawberry_field is None or field_def.args:
                return None
            nullable_type = get_nullable_type(field_def.type)
            is_list = is_list_type(nullable_type)
            sub_type = get_nullable_type(nullable_type.of_type) if is_list else nullable_type
            preloaded = PRELOADED.get((object_type.name, node.name.value))
            scopes = _required_scopes(strawberry_field) if preloaded else frozenset()
            if not is_object_type(sub_type) or scopes is None or (is_list and not preloaded) or (
                    not preloaded and not strawberry_field.is_basic_field):
                return None
            sub_plan = self._plan(sub_type, details)
            if sub_plan is None:
                return None
            steps.append((response_key, preloaded or strawberry_field.python_name, None,
                          nullable_type is field_def.type, sub_plan, sub_type.is_type_of,
                          scopes or None, is_list))
        plan = tuple(steps)
        plans[key] = (field_details_list, part, plan)
        return plan

    def _in_this_part(self, field_details_list: Any) -> bool:
        """Whether graphql-core would execute this field in the part being executed (build_execution_plan)."""
        return bool(get_filtered_defer_usage_set(field_details_list) == (self.defer_usage_set or _NO_DEFERS))

    def _fill(self, plan: Plan, source: Any, info: Any) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for response_key, name, leaf, nullable, sub_plan, is_type_of, scopes, is_list in plan:
            if scopes is not None and not info.context.principal.has(*scopes):
                return None  # the ordinary path refuses the field, with its error at its path
            value = getattr(source, name, Undefined)
            if sub_plan is None or value is None:
                answer = self._leaf(leaf, nullable, value)
                if answer is Undefined:
                    return None
                out[response_key] = answer
            elif value is Undefined or value is NOT_LOADED or self.is_awaitable(value):
                return None
            elif is_list:
                items = self._fill_list(sub_plan, value, is_type_of, info)
                if items is None:
                    return None
                out[response_key] = items
            else:
                if is_type_of is not None and is_type_of(value, info) is not True:
                    return None
                nested = self._fill(sub_plan, value, info)
                if nested is None:
                    return None
                out[response_key] = nested
        return out

    def complete_list_value(self, return_type: Any, field_details_list: Any, info: Any, path: Any, result: Any,
                            position_context: Any) -> Any:
        """A list (a product's stock levels) of plain objects is filled item by item from one plan."""
        item_type = get_nullable_type(return_type.of_type)
        if (isinstance(result, list) and is_object_type(item_type) and self._shortcuts
                and not (_streamed(field_details_list[0].node) and self.get_stream_usage(field_details_list, path))):
            plan = self._plan(item_type, field_details_list)
            if plan is not None:
                filled = self._fill_list(plan, result, item_type.is_type_of, info)
                if filled is not None:
                    return filled
        return super().complete_list_value(return_type, field_details_list, info, path, result, position_context)

    def complete_object_value(self, return_type: GraphQLObjectType, field_details_list: Any, info: Any, path: Any,
                              result: Any, position_context: Any) -> Any:
        if self._shortcuts and (return_type.is_type_of is None or return_type.is_type_of(result, info) is True):
            plan = self._plan(return_type, field_details_list)
            if plan is not None:
                filled = self._fill(plan, result, info)
                if filled is not None:
                    return filled
        return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)

    def build_response(self, data: dict[str, Any] | None) -> Any:
        response = super().build_response(data)
        if isinstance(response, ExperimentalIncrementalExecutionResults):
            # Deferred parts and streamed items are still to be executed, by copies of this context.
            return response._replace(subsequent_results=self._released_after(response.subsequent_results))
        self._release()
        return response

    async def _released_after(self, results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        try:
            async for result in results:
                yield result
        finally:
            await results.aclose()
            self._release()

    def _release(self) -> None:
        # graphql-core's helpers hold bound methods of this context, and the work of deferred parts holds the
        # copies that execute it: reference cycles that would keep the whole request (its context, loaders
        # and every record read) alive until the cyclic garbage collector gets round to it. Execution is
        # over: break them so that all of it is freed now.
        self.__dict__.pop("async_helpers", None)
        self.groups, self.tasks, self.streams = [], [], []

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any,
                      position_context: Any) -> Any:
        if self._shortcuts:
            field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
            plain = _plain_leaf(field_def) if field_def is not None else None
            if plain is not None and not field_details_list[0].node.arguments:
                name, leaf, nullable = plain
                answer = self._leaf(leaf, nullable, getattr(source, name, Undefined))
                if answer is not Undefined:
                    return answer
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

