"""Every check before execution is linear in the document, and every limit says which it is.

A document is measured once, each fragment once (`gateway.policy`), so fragments spread into fragments
cannot multiply the gateway's work; cost and page caps use the variables as execution coerces them.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from graphql import get_introspection_query, parse

from auth.principal import ANONYMOUS
from gateway.policy import PolicyError, _Measure, _Validations, check_document, measure, operation_cost
from gateway.settings import LimitSettings
from tests.integration.gateway_harness import Harness
from tests.security.test_bad_input import GQL, assert_no_upstream

_ORDERS_DEEP = ("orders(first: $f) { edges { node { lines { product { offers { partner { name } } "
                "purchaseOrders { number lines { quantity } } } } } } }")


def fan_out(levels: int) -> str:
    """`F{n}` spreads `F{n-1}` twice: 2^levels fields once expanded, in about 40 bytes a level."""
    fragments = ["fragment F0 on Health { status }"]
    fragments += [f"fragment F{i} on Health {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return f"{{ health {{ ...F{levels - 1} }} }} " + " ".join(fragments)


async def _post(gw: Harness, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"accept": GQL, "authorization": f"Bearer {token}" if token else ""}
    r = await gw.client.post("/graphql", json=body, headers=headers)
    return r.status_code, r.json()


def _error(body: dict[str, Any]) -> tuple[str, str]:
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


async def test_thirty_levels_of_fragment_fan_out_are_refused_at_once_without_credentials(gw: Harness) -> None:
    query = fan_out(30)
    await _post(gw, {"query": fan_out(3)}, None)  # warm the request path once
    started = time.perf_counter()
    status, body = await _post(gw, {"query": query}, None)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert status == 400 and _error(body)[0] == "FIELD_LIMIT"
    assert "limits.max_fields" in _error(body)[1] and str(2**29 + 1) in _error(body)[1]
    assert elapsed_ms < 100, f"{elapsed_ms:.0f} ms"  # the bound; it takes a few ms
    assert_no_upstream(gw)


@pytest.mark.parametrize("levels", [10, 30, 200])
def test_measuring_visits_each_selection_once(levels: int) -> None:
    document = parse(fan_out(levels), max_tokens=100_000)
    selections = 1 + 1 + 1 + 2 * (levels - 1)  # health, its spread, F0's status, two spreads per other level
    assert _Measure(document).visits + 2 <= selections + levels  # no spread is walked twice
    operation = document.definitions[0]
    assert measure(document, operation).fields == 1 + 2 ** (levels - 1)  # type: ignore[arg-type]


def test_a_refused_fan_out_does_not_grow_the_process() -> None:
    document = parse(fan_out(60), max_tokens=100_000)
    tracemalloc.start()
    try:
        with pytest.raises(PolicyError, match=r"limits\.max_fields"):
            check_document(document, None, ANONYMOUS, LimitSettings())
        with pytest.raises(PolicyError, match=r"limits\.max_fields"):
            check_document(document, None, ANONYMOUS, LimitSettings())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 512 * 1024, peak  # was gigabytes: every expanded field materialised


def test_deep_nesting_is_refused_without_walking_all_of_it() -> None:
    # The parser stops at 200 levels; the measure itself stops past any depth limit.
    document = parse("{ health " + "{ status " * 190 + "}" * 190 + " }")
    with pytest.raises(PolicyError, match=r"limits\.max_depth"):
        check_document(document, None, ANONYMOUS, LimitSettings(max_depth=50))


def test_cost_of_fragments_spread_many_times_is_computed_once_each() -> None:
    document = parse(fan_out(40), max_tokens=100_000)
    assert operation_cost(document, document.definitions[0], {}, 100) == 1 + 2**39  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [
    {"query": f"query Q($f: Int = 100) {{ {_ORDERS_DEEP} }}"},  # the page size from the variable's default
    {"query": f"query Q($f: Int) {{ {_ORDERS_DEEP} }}", "variables": {"f": 100.0}},  # a float that coerces to 100
    {"query": f"query Q($f: Int!) {{ {_ORDERS_DEEP} }}", "variables": {"f": 100}},
], ids=["default", "float", "int"])
async def test_cost_uses_the_coerced_variables(gw: Harness, body: dict[str, Any]) -> None:
    status, answer = await _post(gw, body, gw.jwt("admin"))
    assert status == 400 and _error(answer)[0] == "COST_LIMIT", answer
    assert "limits.max_cost" in _error(answer)[1]
    assert_no_upstream(gw)


@pytest.mark.parametrize("body", [
    {"query": "query Q($n: Int = 5000) { orders(first: $n) { edges { cursor } } }"},
    {"query": "query Q($n: Int) { orders(first: $n) { edges { cursor } } }", "variables": {"n": 5000.0}},
    {"query": "query Q($n: Int = 5000) { ...P } fragment P on Query { products(first: $n) { edges { cursor } } }"},
], ids=["default", "float", "fragment"])
async def test_page_caps_use_the_coerced_variables(gw: Harness, body: dict[str, Any]) -> None:
    status, answer = await _post(gw, body, gw.jwt("admin"))
    assert status == 400 and _error(answer)[0] == "BAD_USER_INPUT", answer
    assert "`first`" in _error(answer)[1]
    assert_no_upstream(gw)


@pytest.mark.parametrize("options", [
    {},
    {"descriptions": True, "specified_by_url": True, "directive_is_repeatable": True, "schema_description": True,
     "input_value_deprecation": True},
], ids=["graphql-core", "graphiql-all-options"])
async def test_the_standard_introspection_query_answers_staff(gw: Harness, options: dict[str, bool]) -> None:
    status, body = await _post(gw, {"query": get_introspection_query(**options)}, gw.jwt("support"))
    assert status == 200 and "errors" not in body, body.get("errors")
    types = {t["name"]: t for t in body["data"]["__schema"]["types"]}
    assert {"customer", "orders", "purchaseOrders"} <= {f["name"] for f in types["Query"]["fields"]}
    assert_no_upstream(gw)


async def test_introspection_still_needs_an_internal_principal(gw: Harness) -> None:
    token = await gw.partner_token("V00001")
    status, body = await _post(gw, {"documentId": await gw.trust(get_introspection_query())}, token)
    assert status == 400 and _error(body)[0] == "INTROSPECTION_DISABLED"
    # Spread through a fragment, as GraphiQL does.
    query = "{ partners { code } ...S } fragment S on Query { __schema { queryType { name } } }"
    status, body = await _post(gw, {"documentId": await gw.trust(query)}, token)
    assert status == 400 and _error(body)[0] == "INTROSPECTION_DISABLED"
    assert_no_upstream(gw)


async def test_nested_introspection_lists_are_refused(gw: Harness) -> None:
    query = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    status, body = await _post(gw, {"query": query}, gw.jwt("admin"))
    assert status == 400 and "introspection depth" in _error(body)[1]
    assert_no_upstream(gw)


async def test_a_thousand_copies_of_a_field_name_the_limit(gw: Harness) -> None:
    status, body = await _post(gw, {"query": "{ health { " + " ".join(["status"] * 1000) + " } }"}, None)
    message = "at most 500 fields per operation, fragments expanded (limits.max_fields); this one selects 1001"
    assert status == 400 and _error(body) == ("FIELD_LIMIT", message)


def test_graphql_cores_own_budgets_are_explained() -> None:
    from graphql import build_schema, specified_rules

    schema = build_schema("type Query { a: Int }")
    errors = _Validations(maxsize=1)(schema, parse("{ " + " ".join(["a"] * 1200) + " }"), tuple(specified_rules))
    assert len(errors) == 1 and "work budget" in errors[0].message
    assert errors[0].extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
