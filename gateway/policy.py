"""Operation policy: limits and per-principal rules, checked before validation and before execution.

Every check is linear in the document. A document is measured once (`Shape`, remembered per parsed
document object): each fragment is measured once, in dependency order, and every spread of it reuses
its numbers, so `...F ...F` nested thirty times costs thirty fragments' work, not 2^30 fields'. The
measures are then held against the principal and the limits: anonymous callers may run only the health
query; depth, aliases, directives, root fields and the number of fields (fragments expanded) are
capped; introspection is for internal principals only and has its own depth cap (`ofType` chains are
deep by design, so the ordinary depth limit does not apply inside `__schema` and `__type`). Before
execution the static cost is computed the same way, with the variables as graphql-core coerces them
(defaults applied, `100.0` read as `100`), and page sizes are capped. Nothing here calls an upstream
system.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.values import get_variable_values
from graphql.validation import MaxIntrospectionDepthRule
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.execution import PreExecutionError

from auth.principal import Principal, PrincipalKind
from gateway.settings import LimitSettings

ANONYMOUS_FIELDS = frozenset({"health", "__typename"})
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
DEFAULT_PAGE = 20  # what `first` is when a connection field leaves it out
LIST_FACTOR = 10  # assumed size of lists without `first` (order lines, stock levels)
LIST_FIELDS = frozenset({"lines", "stock", "offers", "purchaseOrders", "shipments", "events"})
#: Selection sets nested deeper than this are not measured further: every depth limit is lower (at most
#: 50), and the walk's recursion stays bounded whatever the document.
MAX_NESTING = 64
#: A backstop: no document within any token limit has this many nodes to visit.
MAX_VISITS = 200_000


class PolicyError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Shape:
    """The measures of a selection set, fragments expanded (counts are of the expanded document)."""

    top: int = 0  # fields at this level
    names: frozenset[str] = frozenset()  # their names
    fields: int = 0  # fields at every level
    aliases: int = 0
    directives: int = 0
    depth: int = 0  # deepest field, a `__schema`/`__type` subtree counting as one level
    depth_all: int = 0  # deepest field, counting every level (what a fragment adds inside introspection)
    introspection_depth: int = 0  # deepest `__schema`/`__type` subtree
    introspection: bool = False  # selects an introspection field other than `__typename`


EMPTY = Shape()


def combine(parts: Sequence[Shape]) -> Shape:
    """The shape of selections side by side (one pass, whatever their number)."""
    if len(parts) == 1:
        return parts[0]
    names: set[str] = set()
    for part in parts:
        names.update(part.names)
    return Shape(top=sum(p.top for p in parts), names=frozenset(names), fields=sum(p.fields for p in parts),
                 aliases=sum(p.aliases for p in parts), directives=sum(p.directives for p in parts),
                 depth=max((p.depth for p in parts), default=0),
                 depth_all=max((p.depth_all for p in parts), default=0),
                 introspection_depth=max((p.introspection_depth for p in parts), default=0),
                 introspection=any(p.introspection for p in parts))


def selected_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation a request runs: the one named, or the document's only one (None: validation says why)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def _spreads(selection_set: SelectionSetNode) -> list[str]:
    """The fragment names spread anywhere in a selection set (an explicit stack: no recursion)."""
    names: list[str] = []
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.append(selection.name.value)
            elif selection.selection_set is not None:  # type: ignore[attr-defined]
                stack.append(selection.selection_set)  # type: ignore[attr-defined]
    return names


def fragment_order(document: DocumentNode) -> list[FragmentDefinitionNode]:
    """The document's fragments, each after the fragments it spreads (a cycle is cut; validation names it)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    uses = {name: _spreads(f.selection_set) for name, f in fragments.items()}
    order: list[FragmentDefinitionNode] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done
    for root in fragments:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(uses[root]))]
        while stack:
            name, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                state[name] = 2
                order.append(fragments[name])
            elif child in fragments and child not in state:
                state[child] = 1
                stack.append((child, iter(uses[child])))
    return order


class _Measure:
    """Measures selection sets, each fragment once."""

    def __init__(self, document: DocumentNode) -> None:
        self.visits = 0
        self.fragments: dict[str, Shape] = {}
        for fragment in fragment_order(document):
            self.fragments[fragment.name.value] = self.selection_set(fragment.selection_set, 0)

    def selection_set(self, selection_set: SelectionSetNode | None, nesting: int) -> Shape:
        if selection_set is None:
            return EMPTY
        self.visits += len(selection_set.selections)
        if self.visits > MAX_VISITS:
            raise PolicyError("the document is too large to check", "DOCUMENT_TOO_LARGE")
        if nesting > MAX_NESTING:  # deeper than any limit: say so without walking further
            return Shape(depth=MAX_NESTING, depth_all=MAX_NESTING, introspection_depth=MAX_NESTING)
        parts: list[Shape] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                parts.append(self.field(selection, nesting))
            elif isinstance(selection, InlineFragmentNode):
                parts.append(self.selection_set(selection.selection_set, nesting + 1))
                parts.append(Shape(directives=len(selection.directives or ())))
            elif isinstance(selection, FragmentSpreadNode):
                # An unknown fragment, or one on a cycle, adds nothing: validation reports both.
                parts.append(self.fragments.get(selection.name.value, EMPTY))
                parts.append(Shape(directives=len(selection.directives or ())))
        return combine(parts)

    def field(self, field: FieldNode, nesting: int) -> Shape:
        name = field.name.value
        child = self.selection_set(field.selection_set, nesting + 1)
        if name in INTROSPECTION_ROOTS:
            depth, introspection_depth = 1, 1 + child.depth_all
        else:
            depth, introspection_depth = 1 + child.depth, child.introspection_depth
        return Shape(top=1, names=frozenset((name,)), fields=1 + child.fields,
                     aliases=child.aliases + (field.alias is not None),
                     directives=child.directives + len(field.directives or ()),
                     depth=depth, depth_all=1 + child.depth_all, introspection_depth=introspection_depth,
                     introspection=child.introspection or (name.startswith("__") and name != "__typename"))


def measure(document: DocumentNode, operation: OperationDefinitionNode) -> Shape:
    """The shape of one operation of a document, fragments expanded."""
    shape = _Measure(document).selection_set(operation.selection_set, 0)
    return combine([shape, Shape(directives=len(operation.directives or ()))])


class _Shapes:
    """`measure`, remembered per document object and operation name (the parser cache shares documents)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: dict[tuple[int, str | None], tuple[DocumentNode, Shape | PolicyError]] = {}

    def __call__(self, document: DocumentNode, operation: OperationDefinitionNode,
                 operation_name: str | None) -> Shape:
        key = (id(document), operation_name)
        found = self._entries.get(key)
        if found is None:
            try:
                result: Shape | PolicyError = measure(document, operation)
            except PolicyError as exc:
                result = exc
            if len(self._entries) >= self.maxsize:
                del self._entries[next(iter(self._entries))]
            found = self._entries[key] = (document, result)
        if isinstance(found[1], PolicyError):
            raise found[1]
        return found[1]


_shapes = _Shapes(maxsize=1_000)


def check_document(document: DocumentNode, operation_name: str | None, principal: Principal,
                   limits: LimitSettings) -> None:
    """Raise PolicyError for the first rule the operation breaks."""
    operation = selected_operation(document, operation_name)
    if operation is None:
        return  # graphql-core's validation reports a missing or ambiguous operation
    shape = _shapes(document, operation, operation_name)
    if shape.top > limits.max_root_fields:
        raise PolicyError(f"at most {limits.max_root_fields} root fields per operation (limits.max_root_fields); "
                          f"this one has {shape.top}", "ROOT_FIELD_LIMIT")
    if principal.kind is PrincipalKind.ANONYMOUS and not shape.names <= ANONYMOUS_FIELDS:
        raise PolicyError("authentication required: send an Authorization: Bearer token", "UNAUTHENTICATED")
    if shape.introspection and not principal.internal:
        raise PolicyError("introspection is for internal users only", "INTROSPECTION_DISABLED")
    if shape.fields > limits.max_fields:
        raise PolicyError(f"at most {limits.max_fields} fields per operation, fragments expanded "
                          f"(limits.max_fields); this one selects {shape.fields}", "FIELD_LIMIT")
    if shape.depth > limits.max_depth:
        raise PolicyError(f"the operation is deeper than {limits.max_depth} levels (limits.max_depth)", "DEPTH_LIMIT")
    if shape.introspection_depth > limits.max_introspection_depth:
        raise PolicyError(f"introspection is deeper than {limits.max_introspection_depth} levels "
                          "(limits.max_introspection_depth)", "DEPTH_LIMIT")
    if shape.aliases > limits.max_aliases:
        raise PolicyError(f"at most {limits.max_aliases} aliases per operation, fragments expanded "
                          f"(limits.max_aliases); this one has {shape.aliases}", "ALIAS_LIMIT")
    if shape.directives > limits.max_directives:
        raise PolicyError(f"at most {limits.max_directives} directives per operation, fragments expanded "
                          f"(limits.max_directives); this one has {shape.directives}", "DIRECTIVE_LIMIT")


def _argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> Any:
    """An argument's value as execution will see it: literal ints and lists, or the coerced variable."""
    for argument in field.arguments or ():
        if argument.name.value == name:
            value = argument.value
            if isinstance(value, VariableNode):
                return variables.get(value.name.value)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, ListValueNode):
                return value.values
            return None
    return None


class _Cost:
    """Static cost of selection sets, each fragment costed once."""

    def __init__(self, document: DocumentNode, variables: Mapping[str, Any], max_page_size: int) -> None:
        self.variables = variables
        self.max_page_size = max_page_size
        self.fragments: dict[str, tuple[int, frozenset[str]]] = {}
        for fragment in fragment_order(document):
            self.fragments[fragment.name.value] = self.selection_set(fragment.selection_set, 0)

    def selection_set(self, selection_set: SelectionSetNode | None, nesting: int) -> tuple[int, frozenset[str]]:
        """The summed cost of a selection set's fields, and their names."""
        total, names = 0, frozenset[str]()
        if selection_set is None or nesting > MAX_NESTING:
            return total, names
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, nesting)
                names |= {selection.name.value}
            else:
                if isinstance(selection, InlineFragmentNode):
                    cost, inner = self.selection_set(selection.selection_set, nesting + 1)
                else:
                    assert isinstance(selection, FragmentSpreadNode)
                    cost, inner = self.fragments.get(selection.name.value, (0, frozenset()))
                total, names = total + cost, names | inner
        return total, names

    def field(self, field: FieldNode, nesting: int) -> int:
        """Every field costs 1, times the page sizes (or assumed list sizes) above it."""
        if field.selection_set is None:
            return 1
        inner, names = self.selection_set(field.selection_set, nesting + 1)
        first = _argument(field, "first", self.variables)
        if isinstance(first, int) and not isinstance(first, bool) and first > self.max_page_size:
            raise PolicyError(f"`first` must be at most {self.max_page_size}, got {first}", "BAD_USER_INPUT")
        if "edges" in names:
            factor = first if isinstance(first, int) and first > 0 else DEFAULT_PAGE
        elif field.name.value == "nodes":
            ids = _argument(field, "ids", self.variables)
            factor = len(ids) if isinstance(ids, Sequence) and not isinstance(ids, str) else LIST_FACTOR
        elif field.name.value in LIST_FIELDS:
            factor = LIST_FACTOR
        else:
            factor = 1
        return 1 + factor * inner


def coerced_variables(schema: GraphQLSchema, operation: OperationDefinitionNode,
                      variables: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The variables as execution will see them, defaults applied; None when they do not coerce
    (execution then refuses them before any resolver runs)."""
    result = get_variable_values(schema, operation.variable_definitions or (), dict(variables or {}),
                                 max_errors=1)
    if isinstance(result, list):
        return None
    coerced: dict[str, Any] = result.coerced
    return coerced


def operation_cost(document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any],
                   max_page_size: int) -> int:
    """Static cost of one operation of the document, with its (coerced) variables."""
    return _Cost(document, variables, max_page_size).selection_set(operation.selection_set, 0)[0]


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
        errors = [_explained(e) for e in validate_document(schema, document, rules)]
        if len(self._entries) >= self.maxsize:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (schema, document, errors)
        return errors


#: graphql-core's own budgets, which end validation with a bare "Validation aborted.": what they are.
_ABORTED = {
    "Validation aborted.": (
        "validation gave up: comparing the fields that share a response name (and the fragments spread "
        "into them) took more than graphql-core's work budget; select each field once per selection set"),
    "Too many validation errors, error limit reached. Validation aborted.": (
        "validation stopped after 100 errors; the first 100 are listed"),
}


def _explained(error: GraphQLError) -> GraphQLError:
    explanation = _ABORTED.get(error.message)
    if explanation is None:
        return error
    return GraphQLError(explanation, extensions={"code": "GRAPHQL_VALIDATION_FAILED"})


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
                ec.pre_execution_errors = _validate(ec.schema._schema, ec.graphql_document,
                                                    _with_introspection_rule(ec.validation_rules))
        yield

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        context = ec.context
        document = ec.graphql_document
        operation = None if document is None else selected_operation(document, ec.operation_name)
        if document is not None and operation is not None:
            variables = coerced_variables(ec.schema._schema, operation, ec.variables)
            try:
                # Variables that do not coerce are refused by execution itself, before any resolver runs.
                cost = 0 if variables is None else operation_cost(document, operation, variables,
                                                                   context.services.max_page_size)
                if cost > context.limits.max_cost:
                    raise PolicyError(f"the operation costs {cost}, more than the limit of {context.limits.max_cost} "
                                      "(limits.max_cost)", "COST_LIMIT")
            except PolicyError as exc:
                ec.result = PreExecutionError(data=None, errors=[_error(exc)])
        yield


_rule_sets: dict[Any, tuple[Any, ...]] = {}


def _with_introspection_rule(rules: Any) -> tuple[Any, ...]:
    """The validation rules plus graphql-core's cap on nested introspection lists (`fields { type { fields`)."""
    found = _rule_sets.get(rules)
    if found is None:
        found = _rule_sets[rules] = (*rules, MaxIntrospectionDepthRule)
    return found
