"""Operation policy: limits and per-principal rules, checked before validation and before execution.

One walk over the operation, with fragments expanded, counts depth (introspection fields included),
aliases, directives and root fields, and refuses introspection to non-internal principals and
everything but the health query to anonymous ones. The walk stops at the first limit it passes, so a
hostile document costs at most the limit's worth of work, and graphql-core's own (more expensive)
validation never sees it. Before execution a second walk, with the variables, computes the static cost
and enforces page-size caps. Nothing here calls an upstream system.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.execution import PreExecutionError

from auth.principal import Principal, PrincipalKind
from gateway.settings import LimitSettings

ANONYMOUS_FIELDS = frozenset({"health", "__typename"})
DEFAULT_PAGE = 20  # what `first` is when a connection field leaves it out
LIST_FACTOR = 10  # assumed size of lists without `first` (order lines, stock levels)


class PolicyError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Counts:
    aliases: int = 0
    directives: int = 0


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def _fields(selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode],
            seen: frozenset[str]) -> Iterator[tuple[FieldNode, frozenset[str]]]:
    """The fields of a selection set with fragments expanded (a fragment cycle is cut, validation names it)."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection, seen
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                continue
            yield from _fields(fragments[name].selection_set, fragments, seen | {name})


def check_document(document: DocumentNode, operation_name: str | None, principal: Principal,
                   limits: LimitSettings) -> None:
    """Raise PolicyError for the first rule the operation breaks."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operation = _operation(document, operation_name)
    if operation is None:
        return  # graphql-core's validation reports a missing or ambiguous operation
    counts = _Counts()
    root = list(_fields(operation.selection_set, fragments, frozenset()))
    if len(root) > limits.max_root_fields:
        raise PolicyError(f"at most {limits.max_root_fields} root fields per operation", "ROOT_FIELD_LIMIT")
    if principal.kind is PrincipalKind.ANONYMOUS:
        names = {f.name.value for f, _ in root}
        if not names <= ANONYMOUS_FIELDS:
            raise PolicyError("authentication required: send an Authorization: Bearer token", "UNAUTHENTICATED")
    counts.directives += len(operation.directives or ())

    def visit(field: FieldNode, depth: int, seen: frozenset[str]) -> None:
        if depth > limits.max_depth:
            raise PolicyError(f"the operation is deeper than {limits.max_depth} levels", "DEPTH_LIMIT")
        if field.name.value.startswith("__") and field.name.value != "__typename" and not principal.internal:
            raise PolicyError("introspection is for internal users only", "INTROSPECTION_DISABLED")
        if field.alias is not None:
            counts.aliases += 1
            if counts.aliases > limits.max_aliases:
                raise PolicyError(f"at most {limits.max_aliases} aliases per operation", "ALIAS_LIMIT")
        counts.directives += len(field.directives or ())
        if counts.directives > limits.max_directives:
            raise PolicyError(f"at most {limits.max_directives} directives per operation", "DIRECTIVE_LIMIT")
        for child, child_seen in _fields(field.selection_set, fragments, seen):
            visit(child, depth + 1, child_seen)

    for field, seen in root:
        visit(field, 1, seen)


def _argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> Any:
    for argument in field.arguments or ():
        if argument.name.value == name:
            value = argument.value
            if isinstance(value, VariableNode):
                return variables.get(value.name.value)
            if isinstance(value, IntValueNode):
                return int(value.value)
            return None
    return None


def operation_cost(document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any],
                   max_page_size: int) -> int:
    """Static cost: every field costs 1, times the page sizes (or assumed list sizes) above it."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operation = _operation(document, operation_name)
    if operation is None:
        return 0

    def cost(field: FieldNode, seen: frozenset[str]) -> int:
        children = list(_fields(field.selection_set, fragments, seen))
        if not children:
            return 1
        first = _argument(field, "first", variables)
        if isinstance(first, int) and not isinstance(first, bool) and first > max_page_size:
            raise PolicyError(f"`first` must be at most {max_page_size}, got {first}", "BAD_USER_INPUT")
        inner = sum(cost(child, child_seen) for child, child_seen in children)
        if any(child.name.value == "edges" for child, _ in children):
            factor = first if isinstance(first, int) and first > 0 else DEFAULT_PAGE
        elif field.name.value in ("lines", "stock", "offers", "purchaseOrders", "shipments", "events", "nodes"):
            factor = LIST_FACTOR
        else:
            factor = 1
        return 1 + factor * inner

    return sum(cost(field, seen) for field, seen in _fields(operation.selection_set, fragments, frozenset()))


def _error(exc: PolicyError) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": exc.code})


class _Validations:
    """graphql-core's validation of a document against a schema, remembered per document object.

    Keyed by the document's identity: the parser cache hands out one document per query text, and a
    document's own hash walks its whole tree (some 200 nodes for customer 360, on every request). Each
    entry keeps its schema and document alive, so their ids cannot be reused while the entry exists.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: dict[tuple[int, int, Any], tuple[GraphQLSchema, DocumentNode, list[GraphQLError]]] = {}

    def __call__(self, schema: GraphQLSchema, document: DocumentNode, rules: Any) -> list[GraphQLError]:
        key = (id(schema), id(document), rules)
        found = self._entries.get(key)
        if found is not None:
            return found[2]
        errors: list[GraphQLError] = validate_document(schema, document, rules)
        if len(self._entries) >= self.maxsize:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (schema, document, errors)
        return errors


_validate = _Validations(maxsize=1_000)


class ParsedDocuments(ParserCache):
    """Parsing, remembered per query text (and token limit): the same text yields the same document."""

    def __init__(self) -> None:
        super().__init__(maxsize=1_000)


class OperationPolicy(SchemaExtension):
    """Applies `check_document` before validation and the cost limit before execution.

    It also runs graphql-core's validation itself, remembered per document (the parser cache hands out
    one document per text) and rule set: the principal-dependent checks above are never cached.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        self.execution_context.parse_options["max_tokens"] = context.limits.max_tokens
        yield

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        if ec.graphql_document is not None:
            if hasattr(ec.context, "document"):
                ec.context.document = ec.graphql_document
            try:
                check_document(ec.graphql_document, ec.operation_name, ec.context.principal, ec.context.limits)
            except PolicyError as exc:
                # Strawberry skips its own validation when errors are already set.
                ec.pre_execution_errors = [_error(exc)]
            else:
                ec.pre_execution_errors = _validate(ec.schema._schema, ec.graphql_document, ec.validation_rules)
        yield

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        context = ec.context
        if ec.graphql_document is not None:
            try:
                cost = operation_cost(ec.graphql_document, ec.operation_name, ec.variables or {},
                                      context.services.max_page_size)
                if cost > context.limits.max_cost:
                    raise PolicyError(f"the operation costs {cost}, more than the limit of {context.limits.max_cost}",
                                      "COST_LIMIT")
            except PolicyError as exc:
                ec.result = PreExecutionError(data=None, errors=[_error(exc)])
        yield
