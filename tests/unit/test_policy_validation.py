"""Validation is remembered per document object, and still reports what graphql-core reports."""

from __future__ import annotations

from graphql import build_schema, parse, specified_rules

from gateway.policy import _Validations


def test_validation_is_remembered_per_document_and_reports_errors() -> None:
    schema = build_schema("type Query { a: Int }")
    validations = _Validations(maxsize=2)
    rules = tuple(specified_rules)
    good, bad = parse("{ a }"), parse("{ b }")
    assert validations(schema, good, rules) == []
    errors = validations(schema, bad, rules)
    assert [e.message for e in errors] == ["Cannot query field 'b' on type 'Query'. Did you mean 'a'?"]
    assert validations(schema, bad, rules) is errors  # remembered, not validated again
    assert validations(schema, parse("{ b }"), rules) is not errors  # another document object: its own entry
    assert len(validations._entries) == 2  # bounded: the oldest went
