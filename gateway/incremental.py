"""Incremental delivery over HTTP: the parts of a `@defer`/`@stream` answer as they are ready.

graphql-core 3.3 produces the current draft of incremental delivery (`pending` ids, `incremental` entries
by id, `completed`). Apollo Client, urql and Relay read the earlier format that Apollo Router also sends,
`deferSpec=20220824`: a first payload `{data, errors?, hasNext: true}`, then payloads
`{incremental: [{data | items, path, label?, errors?}], hasNext}`, the last one with `hasNext: false`.
`Payloads` translates one into the other; `Multipart` and `EventStream` frame the payloads for the wire:
`multipart/mixed; boundary="-"; deferSpec=20220824` (each part `content-type: application/json`) or
server-sent events as in graphql-sse's distinct connections mode (`event: next` per payload, then
`event: complete`).

A client that accepts neither gets, for an operation that would be delivered in parts, a 406 before
anything is executed (as Apollo Router answers), so it is never sent a part it cannot read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution import (
    IncrementalDeferResult,
    InitialIncrementalExecutionResult,
    PendingResult,
    SubsequentIncrementalExecutionResult,
)

from gateway.accept import media_ranges
from gateway.policy import selected_operation

DEFER_SPEC = "20220824"
MULTIPART = "multipart/mixed"
EVENT_STREAM = "text/event-stream"

Stream = Literal["multipart", "sse"]
Path = list[str | int]


def stream_of(accept: str) -> Stream | None:
    """The stream the Accept header allows, if any: multipart/mixed in the 20220824 format, or SSE.

    `multipart/mixed` counts when it asks for no format or for `deferSpec=20220824`; one asking for another
    format (`incrementalSpec`, or `subscriptionSpec` for subscriptions) does not, since the parts would
    be in a shape that client does not read. Wildcards do not count: a client that has not named a stream
    is answered in one piece.
    """
    offered: list[tuple[tuple[float, int], Stream]] = []
    for media_range in media_ranges(accept):
        params = media_range.params
        if media_range.media == MULTIPART and params.get("deferspec", DEFER_SPEC) == DEFER_SPEC and not (
                {"incrementalspec", "subscriptionspec"} & params.keys()):
            offered.append((media_range.rank, "multipart"))
        elif media_range.media == EVENT_STREAM:
            offered.append((media_range.rank, "sse"))
    return max(offered)[1] if offered else None


def defers(document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None) -> bool:
    """Whether the operation to run has a `@defer` or `@stream` that is not switched off by its `if`.

    Read from the document alone, before anything runs; an `if` given by a variable counts as its value
    (or its default). Fragments are walked once each, whatever the number of their spreads.
    """
    operation = selected_operation(document, operation_name)
    if operation is None:
        return False  # execution reports it
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {v.variable.name.value: v.default_value for v in operation.variable_definitions or ()}
    given = variables or {}

    def condition(directive: DirectiveNode | None, absent: bool) -> bool:
        if directive is None:
            return absent
        value = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
        if isinstance(value, VariableNode):
            if value.name.value in given:
                return given[value.name.value] is not False
            value = defaults.get(value.name.value)
        return not (isinstance(value, BooleanValueNode) and not value.value)

    def named(node: SelectionNode, name: str) -> DirectiveNode | None:
        return next((d for d in node.directives or () if d.name.value == name), None)

    seen: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            skip, include = named(selection, "skip"), named(selection, "include")
            if (skip is not None and condition(skip, False)) or not condition(include, True):
                continue
            if isinstance(selection, FieldNode):
                stream = named(selection, "stream")
                if stream is not None and condition(stream, True):
                    return True
                if selection.selection_set is not None:
                    pending.append(selection.selection_set)
                continue
            defer = named(selection, "defer")
            if defer is not None and condition(defer, True):
                return True
            if isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif (isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen
                  and selection.name.value in fragments):
                seen.add(selection.name.value)
                pending.append(fragments[selection.name.value].selection_set)
    return False


class Payloads:
    """graphql-core's subsequent results as deferSpec=20220824 payloads, one request's worth.

    The old format names each part by its path; the new one by the id of a `pending` entry, with the path
    given once. A streamed list's items carry the index of the first of them, which the new format leaves
    out: it is the length the list had when it was last sent, so everything sent is kept for the request.
    """

    def __init__(self, initial: InitialIncrementalExecutionResult,
                 format_errors: Callable[[Sequence[GraphQLError]], list[dict[str, Any]]]) -> None:
        self.format_errors = format_errors
        self.pending: dict[str, PendingResult] = {}
        self.next_index: dict[str, int] = {}  # per stream id: the index of its next item
        self.sent: list[tuple[Path, Any]] = [([], initial.data)]  # (path, value) of everything sent
        self._announce(initial.pending)

    def _announce(self, pending: Sequence[PendingResult] | None) -> None:
        for entry in pending or ():
            self.pending[entry.id] = entry

    def _value_at(self, path: Path) -> Any:
        for base, value in reversed(self.sent):
            if path[:len(base)] != base:
                continue
            for key in path[len(base):]:
                found = (isinstance(value, dict) and key in value) or (
                    isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value))
                if not found:
                    break
                value = value[key]
            else:
                return value
        return None

    def _first_index(self, entry: PendingResult) -> int:
        if entry.id not in self.next_index:
            items = self._value_at(list(entry.path))
            self.next_index[entry.id] = len(items) if isinstance(items, list) else 0
        return self.next_index[entry.id]

    def _entry(self, entry: PendingResult, key: str, value: Any, path: Path,
               errors: Sequence[GraphQLError] | None) -> dict[str, Any]:
        out: dict[str, Any] = {key: value, "path": path}
        if entry.label is not None:
            out["label"] = entry.label
        if errors:
            out["errors"] = self.format_errors(errors)
        return out

    def subsequent(self, result: SubsequentIncrementalExecutionResult) -> dict[str, Any] | None:
        """The payload for one subsequent result, or None when it has nothing a client reads."""
        self._announce(result.pending)
        incremental: list[dict[str, Any]] = []
        for part in result.incremental or ():
            if isinstance(part, IncrementalDeferResult):  # recorded first: a stream may start inside it
                path = [*self.pending[part.id].path, *(part.sub_path or ())]
                self.sent.append((path, part.data))
        for part in result.incremental or ():
            entry = self.pending[part.id]
            if isinstance(part, IncrementalDeferResult):
                path = [*entry.path, *(part.sub_path or ())]
                incremental.append(self._entry(entry, "data", part.data, path, part.errors))
            else:
                first = self._first_index(entry)
                for offset, item in enumerate(part.items):
                    self.sent.append(([*entry.path, first + offset], item))
                self.next_index[entry.id] = first + len(part.items)
                incremental.append(self._entry(entry, "items", part.items, [*entry.path, first], part.errors))
        for done in result.completed or ():
            entry = self.pending.pop(done.id)
            if done.errors:  # the part failed as a whole: its errors, with nothing in its place
                if isinstance(self._value_at(list(entry.path)), list):
                    incremental.append(self._entry(entry, "items", None, [*entry.path, self._first_index(entry)],
                                                   done.errors))
                else:
                    incremental.append(self._entry(entry, "data", None, list(entry.path), done.errors))
            self.next_index.pop(done.id, None)
        if not incremental and result.has_next:
            return None
        payload: dict[str, Any] = {"incremental": incremental} if incremental else {}
        payload["hasNext"] = result.has_next
        return payload


class Multipart:
    """`multipart/mixed` as Apollo Client reads it: every part is followed by the next delimiter at once,
    since a reader only knows a part is whole when it sees the delimiter after it."""

    media_type = f'{MULTIPART}; boundary="-"; deferSpec={DEFER_SPEC}'
    start = b"\r\n---"
    end = b"--\r\n"

    @staticmethod
    def part(payload: bytes) -> bytes:
        return b"\r\ncontent-type: application/json; charset=utf-8\r\n\r\n" + payload + b"\r\n---"


class EventStream:
    """Server-sent events as graphql-sse's distinct connections mode sends them (one line of JSON each)."""

    media_type = EVENT_STREAM
    start = b""
    end = b"event: complete\ndata:\n\n"

    @staticmethod
    def part(payload: bytes) -> bytes:
        return b"event: next\ndata: " + payload + b"\n\n"


def framing(stream: Stream) -> type[Multipart] | type[EventStream]:
    return Multipart if stream == "multipart" else EventStream
