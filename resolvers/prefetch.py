"""Look-ahead: start the loads a selection will need before the resolvers that need them run.

GraphQL resolves level by level, so `line -> product -> stock -> warehouse` would cost one upstream wave
per level. Where a resolver already knows the key a deeper field will load by (a line knows its SKU,
and the stock of that SKU does not depend on the item record), it starts that load now through the
request's loaders; the deeper resolver later asks the same loader for the same key and gets the same
answer, so the call counts are unchanged and the waves overlap.

Only loads that a later resolver would surely make are started: the field must be selected and the
principal must hold its scopes. A load whose answer then goes unused (say, the customer does not
exist) costs a call but shows nothing: every row rule still runs where the data is resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, GraphQLResolveInfo, InlineFragmentNode, SelectionSetNode
from graphql.utilities import value_from_ast_untyped

from resolvers.loaders import BatchFn
from resolvers.permissions import FIELD_SCOPES, principal_of

SEND_TURNS = 6  # see send()


def _fields(raw: GraphQLResolveInfo[Any], selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(raw, selection.selection_set)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = raw.fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(raw, fragment.selection_set)


def selection(info: Any, *path: str) -> FieldNode | None:
    """The first field at `path` below the current field (through fragments), or None if not selected."""
    raw: GraphQLResolveInfo[Any] = info._raw_info
    memo = info.context.selections
    key = (id(raw.field_nodes[0]), path)  # the document lives as long as the request, and with it the id
    if key in memo:
        found: FieldNode | None = memo[key]
        return found
    nodes: list[FieldNode] = list(raw.field_nodes)
    for name in path:
        nodes = [f for node in nodes for f in _fields(raw, node.selection_set) if f.name.value == name]
        if not nodes:
            break
    memo[key] = found = nodes[0] if nodes else None
    return found


def selects(info: Any, *path: str) -> bool:
    return selection(info, *path) is not None


def arguments(info: Any, node: FieldNode) -> dict[str, Any]:
    """The literal or variable values of a selected field's arguments (unvalidated: compare, don't trust)."""
    raw: GraphQLResolveInfo[Any] = info._raw_info
    variables: Any = raw.variable_values
    values: dict[str, Any] = getattr(variables, "coerced", variables)  # graphql-core 3.3 wraps them
    return {a.name.value: value_from_ast_untyped(a.value, values) for a in node.arguments or ()}


def may_resolve(info: Any, *coordinates: str) -> bool:
    """Whether the principal holds the scopes of every one of these fields (Type.field)."""
    principal = principal_of(info)
    return all(principal.has(*FIELD_SCOPES.get(c, ())) for c in coordinates)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # the resolver that needs it sees the error; an unused prefetch stays quiet


def prefetch(info: Any, fn: BatchFn[Any, Any, Any], key: Hashable, args: Hashable = None,
             then: Callable[[Any], None] | None = None) -> None:
    """Start loading `key` now; a later `loaders.load(fn, key, args)` in this request joins it.

    `then` gets the answer as soon as it arrives, to start the loads that hang off it in turn (an order's
    lines, say) without waiting for the resolvers in between. It is not called if the load fails.
    """
    future = info.context.loaders.get(fn, args).load(key)
    future.add_done_callback(_retrieve)
    if then is not None:
        future.add_done_callback(lambda done: then(done.result()) if _succeeded(done) else None)


async def send() -> None:
    """Let the loads started so far go out before this resolver goes on.

    When a resolver returns a page of objects, graphql-core queues a task for every resolver field of
    every object on it, and whatever is queued after that waits for all of them. A load takes several
    turns of the event loop to reach the wire: the DataLoader queues its batch task, the batch queues
    the source's guarded call as a task of its own (sources.resilience), and that call goes out at once
    on the database driver, or after three more turns of the HTTP client's own. Taking six turns here,
    before returning the page, puts the requests on the wire first (the order list's CRM read then
    starts 2 ms sooner); a turn with little queued costs a few microseconds.
    """
    for _ in range(SEND_TURNS):
        await asyncio.sleep(0)


def prefetch_many(info: Any, fn: BatchFn[Any, Any, Any], keys: Iterable[Hashable], args: Hashable = None) -> None:
    """`prefetch` for several keys of one loader."""
    loader = info.context.loaders.get(fn, args)
    for key in keys:
        loader.load(key).add_done_callback(_retrieve)


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return not future.cancelled() and future.exception() is None
