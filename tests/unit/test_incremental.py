"""Incremental delivery's pieces on their own: which Accept headers allow a stream, which operations are
delivered in parts, and graphql-core's payloads in the deferSpec=20220824 shape."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, parse
from graphql.execution import (
    CompletedResult,
    IncrementalDeferResult,
    IncrementalStreamResult,
    InitialIncrementalExecutionResult,
    PendingResult,
    SubsequentIncrementalExecutionResult,
)

from gateway.incremental import EventStream, Multipart, Payloads, defers, stream_of


@pytest.mark.parametrize(("accept", "stream"), [
    ("multipart/mixed;deferSpec=20220824,application/json", "multipart"),  # Apollo Client
    ('multipart/mixed; boundary="-"', "multipart"),
    ("text/event-stream", "sse"),
    ("text/event-stream;q=0.5, multipart/mixed", "multipart"),
    ("text/event-stream, multipart/mixed", "sse"),
    ("multipart/mixed;deferSpec=20230101", None),  # a format we do not write
    ("multipart/mixed;incrementalSpec=v0.2", None),
    ("multipart/mixed;subscriptionSpec=1.0", None),
    ("multipart/mixed;q=0, application/json", None),
    ("*/*", None),
    ("application/json", None),
    ("", None),
])
def test_stream_of_accept(accept: str, stream: str | None) -> None:
    assert stream_of(accept) == stream


@pytest.mark.parametrize(("query", "variables", "expected"), [
    ("{ a ... @defer { b } }", None, True),
    ("{ a ... F @defer } fragment F on Q { b }", None, True),
    ("{ ...F } fragment F on Q { ...G } fragment G on Q { list @stream { c } }", None, True),
    ("{ a ... @defer(if: false) { b } }", None, False),
    ("query($d: Boolean!) { a ... @defer(if: $d) { b } }", {"d": False}, False),
    ("query($d: Boolean!) { a ... @defer(if: $d) { b } }", {"d": True}, True),
    ("query($d: Boolean = false) { a ... @defer(if: $d) { b } }", {}, False),
    ("{ a ... @defer @skip(if: true) { b } }", None, False),
    ("{ a @include(if: false) { ... @defer { b } } }", None, False),
    ("{ a { b } } query Other { c ... @defer { d } }", None, False),  # two operations, none named: an error
    ("{ a { defer stream } }", None, False),
])
def test_defers(query: str, variables: dict[str, Any] | None, expected: bool) -> None:
    assert defers(parse(query), None, variables) is expected


def test_defers_looks_at_the_named_operation_only() -> None:
    document = parse("query A { a } query B { b ... @defer { c } }")
    assert defers(document, "B", None) and not defers(document, "A", None)


def _errors(errors: Any) -> list[dict[str, Any]]:
    return [{"message": e.message, "path": e.path} for e in errors]


def test_deferred_data_and_streamed_items_get_their_paths() -> None:
    initial = InitialIncrementalExecutionResult(
        {"customer": {"name": "A", "orders": [{"lines": [1]}]}}, None,
        pending=[PendingResult("0", ["customer"], "crm"), PendingResult("1", ["customer", "orders", 0, "lines"])],
        has_next=True)
    payloads = Payloads(initial, _errors)
    second = payloads.subsequent(SubsequentIncrementalExecutionResult(
        has_next=True, incremental=[IncrementalStreamResult([2, 3], "1"),
                                    IncrementalDeferResult({"email": "a@b"}, "0")],
        completed=[CompletedResult("0")]))
    assert second == {"incremental": [
        {"items": [2, 3], "path": ["customer", "orders", 0, "lines", 1]},
        {"data": {"email": "a@b"}, "path": ["customer"], "label": "crm"}], "hasNext": True}
    third = payloads.subsequent(SubsequentIncrementalExecutionResult(
        has_next=False, incremental=[IncrementalStreamResult([4], "1")], completed=[CompletedResult("1")]))
    assert third == {"incremental": [{"items": [4], "path": ["customer", "orders", 0, "lines", 3]}],
                     "hasNext": False}


def test_a_stream_announced_in_a_deferred_part_counts_the_items_sent_there() -> None:
    initial = InitialIncrementalExecutionResult({"a": {}}, None, pending=[PendingResult("0", ["a"])], has_next=True)
    payloads = Payloads(initial, _errors)
    payloads.subsequent(SubsequentIncrementalExecutionResult(
        has_next=True, pending=[PendingResult("1", ["a", "list"])],
        incremental=[IncrementalDeferResult({"list": ["x", "y"]}, "0")], completed=[CompletedResult("0")]))
    last = payloads.subsequent(SubsequentIncrementalExecutionResult(
        has_next=False, incremental=[IncrementalStreamResult(["z"], "1")], completed=[CompletedResult("1")]))
    assert last == {"incremental": [{"items": ["z"], "path": ["a", "list", 2]}], "hasNext": False}


def test_a_part_that_fails_as_a_whole_is_null_with_its_errors() -> None:
    initial = InitialIncrementalExecutionResult(
        {"a": {"list": [1]}}, None, pending=[PendingResult("0", ["a"]), PendingResult("1", ["a", "list"])],
        has_next=True)
    payloads = Payloads(initial, _errors)
    boom = GraphQLError("boom", path=["a", "b"])
    assert payloads.subsequent(SubsequentIncrementalExecutionResult(
        has_next=False, completed=[CompletedResult("0", [boom]), CompletedResult("1", [boom])])) == {
        "incremental": [{"data": None, "path": ["a"], "errors": [{"message": "boom", "path": ["a", "b"]}]},
                        {"items": None, "path": ["a", "list", 1], "errors": [{"message": "boom", "path": ["a", "b"]}]}],
        "hasNext": False}


def test_a_result_with_nothing_to_read_is_left_out_unless_it_is_the_last() -> None:
    initial = InitialIncrementalExecutionResult({}, None, pending=[PendingResult("0", [])], has_next=True)
    payloads = Payloads(initial, _errors)
    assert payloads.subsequent(SubsequentIncrementalExecutionResult(has_next=True)) is None
    assert payloads.subsequent(SubsequentIncrementalExecutionResult(
        has_next=False, completed=[CompletedResult("0")])) == {"hasNext": False}


def test_framing() -> None:
    assert Multipart.start + Multipart.part(b"{}") + Multipart.end == (
        b'\r\n---\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{}\r\n-----\r\n')
    assert EventStream.part(b"{}") + EventStream.end == b"event: next\ndata: {}\n\nevent: complete\ndata:\n\n"
