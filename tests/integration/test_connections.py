"""Every connection of the schema reaches its last row, and takes back only cursors the gateway issued.

The connection fields are found in the schema itself, so a new one is covered as soon as it exists: the
test fails until it knows how to reach it and how many rows its source holds.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import GraphQLObjectType, get_named_type

from auth.audit import AuditFilter
from demo.world import Customer, World
from gateway.app import gateway_schema
from tests.integration.expected import orders_of
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_graph import gid

#: More purchase orders than two of the supplier portal's pages (200 each): paging must cross them.
PURCHASE_ORDERS = 450
PAGE = "pageInfo { hasNextPage endCursor } edges { cursor node { %s } }"


def connection_fields() -> list[str]:
    """`Type.field` of every field of the schema whose type is a Relay connection."""
    found = []
    for type_ in gateway_schema()._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            target = get_named_type(field.type)
            if isinstance(target, GraphQLObjectType) and {"edges", "pageInfo"} <= set(target.fields):
                found.append(f"{type_.name}.{name}")
    return sorted(found)


CONNECTIONS = connection_fields()


def most_orders(world: World) -> Customer:
    """The customer, known to both systems under the same number, with the most orders."""
    counts = Counter(o.customer for o in world.orders())
    return max((c for c in world.customers if c.crm_erp_number == c.erp_number), key=lambda c: counts[c.erp_number])


def most_interactions(world: World) -> Customer:
    """The customer, known to both systems under the same number, with the most CRM interactions."""
    return max((c for c in world.customers if c.crm_erp_number == c.erp_number),
               key=lambda c: len(world.interactions[c.crm_id]))


@dataclass(frozen=True)
class Walk:
    """How to page through one connection field, and where its source's own rows come from."""

    document: str  # takes $first and $after (and whatever `variables` gives)
    path: tuple[str, ...]  # from `data` to the connection
    #: The rows the source holds (from the World, or from the source itself), as keys `key` makes of nodes.
    expected: Callable[[Harness, dict[str, Any]], Awaitable[list[Any]]]
    key: Callable[[dict[str, Any]], Any]
    #: Upstream calls of the connection's own reads so far (the lookup of a parent object is not one).
    own_calls: Callable[[Harness], int]
    variables: Callable[[World], dict[str, Any]] = lambda w: {}
    #: False when the nodes cannot name the source's rows: then count and uniqueness only.
    same_keys: bool = True


def _sql(table: str) -> Callable[[Harness], int]:
    return lambda h: sum(1 for s in h.sql if table in s)


def _http(system: str, part: str) -> Callable[[Harness], int]:
    return lambda h: sum(n for path, n in h.upstream[system].paths.items() if part in path)


def _root(field: str, node: str, extra: str = "", filter_: str = "") -> str:
    return (f"query($first: Int!, $after: String{extra}) {{ {field}(first: $first, after: $after{filter_}) "
            f"{{ {PAGE % node} }} }}")


def _nested(field: str, node: str) -> str:
    return (f"query($first: Int!, $after: String, $n: String!) {{ customer(number: $n) {{ "
            f"{field}(first: $first, after: $after) {{ {PAGE % node} }} }} }}")


async def crm_customers(h: Harness, _: dict[str, Any]) -> list[Any]:
    return [c.crm_id for c in h.world.customers]


async def erp_orders(h: Harness, _: dict[str, Any]) -> list[Any]:
    return [str(o.number) for o in h.world.orders()]


async def erp_items(h: Harness, _: dict[str, Any]) -> list[Any]:
    return [i.number for i in h.world.items]


async def supplier_purchase_orders(h: Harness, _: dict[str, Any]) -> list[Any]:
    return [p.id for p in h.world.purchase_orders]


async def audit_trail(h: Harness, variables: dict[str, Any]) -> list[Any]:
    return [r.id async for r in h.app.state.services.audit.stream(AuditFilter(until=variables["to"]))]


async def saga_log(h: Harness, _: dict[str, Any]) -> list[Any]:
    return [r.id for r in await h.app.state.services.operations.list(limit=10_000)]


async def orders_of_customer(h: Harness, variables: dict[str, Any]) -> list[Any]:
    return [str(o.number) for o in orders_of(h.world, variables["n"])]


async def interactions_of_customer(h: Harness, variables: dict[str, Any]) -> list[Any]:
    customer = next(c for c in h.world.customers if c.erp_number == variables["n"])
    return [(i.occurred_at, i.subject) for i in h.world.interactions[customer.crm_id]]


WALKS: dict[str, Walk] = {
    "Query.customers": Walk(_root("customers", "id"), ("customers",), crm_customers, lambda n: n["id"],
                            _http("crm", "/customers"), same_keys=False),  # node ids go through the crosswalk
    "Query.orders": Walk(_root("orders", "number"), ("orders",), erp_orders, lambda n: n["number"],
                         _sql("ORDHDR")),
    "Query.products": Walk(_root("products", "sku"), ("products",), erp_items, lambda n: n["sku"],
                           _sql("ITMMAS")),
    "Query.purchaseOrders": Walk(_root("purchaseOrders", "number"), ("purchaseOrders",), supplier_purchase_orders,
                                 lambda n: n["number"], _http("supplier", "/purchase-orders")),
    "Query.auditEvents": Walk(_root("auditEvents", "id", ", $to: String", ", filter: {to: $to}"), ("auditEvents",),
                              audit_trail, lambda n: n["id"],
                              lambda h: 0,  # the trail is the gateway's own database, not an upstream
                              variables=lambda w: {"to": datetime.now(UTC).isoformat(timespec="microseconds")}),
    "Query.sagas": Walk(_root("sagas", "id"), ("sagas",), saga_log, lambda n: n["id"],
                        lambda h: 0),  # the saga log is the gateway's own database, not an upstream
    "Customer.orders": Walk(_nested("orders", "number"), ("customer", "orders"), orders_of_customer,
                            lambda n: n["number"], _sql("ORDHDR"),
                            variables=lambda w: {"n": most_orders(w).erp_number}),
    "Customer.interactions": Walk(_nested("interactions", "at summary"), ("customer", "interactions"),
                                  interactions_of_customer,
                                  lambda n: (datetime.fromisoformat(n["at"]), n["summary"]),
                                  _http("crm", "/interactions"),
                                  variables=lambda w: {"n": most_interactions(w).erp_number}),
}


@pytest.fixture(scope="module")
async def wide(world: World, erp_sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[Harness]:
    """The test world, with more purchase orders than two supplier pages; every other system as seeded.

    Each domain of a world draws from its own random stream, so the ERP seeded from `world` holds
    this world's ERP data too.
    """
    wider = World(seed=world.seed, sizes=replace(world.sizes, purchase_orders=PURCHASE_ORDERS))
    async with running_gateway(wider, erp_sqlite_url, tmp_path_factory.mktemp("connections") / "gateway.db") as h:
        for _ in range(12):  # some audit trail to page through
            assert (await h.query("{ health { status } }"))["data"]
        for _ in range(9):  # and some sagas: refused orders, which change nothing in the shared ERP
            placed = await h.query('mutation { placeOrder(input: {customer: "999999", warehouse: "DAL", '
                                   'lines: [{sku: "BRG00001", quantity: 1}]}) { userErrors { code } } }')
            assert placed["data"]["placeOrder"]["userErrors"][0]["code"] == "UNKNOWN_CUSTOMER", placed
        yield h


def at(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    found: Any = body["data"]
    for name in path:
        found = found[name]
    return found


async def walk(h: Harness, spec: Walk, first: int, variables: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Every node of the connection, page by page, checking each page's pageInfo on the way."""
    nodes: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(limit):
        body = await h.query(spec.document, {**variables, "first": first, "after": after})
        assert "errors" not in body, body
        page = at(body, spec.path)
        edges, info = page["edges"], page["pageInfo"]
        nodes.extend(e["node"] for e in edges)
        if edges:
            assert info["endCursor"] == edges[-1]["cursor"], info
        else:  # only a connection without any row has an empty page: its first
            assert after is None and info["endCursor"] is None, (after, info)
        if not info["hasNextPage"]:
            return nodes
        assert len(edges) == first, f"a page of {len(edges)} of {first} says there is a next one"
        after = info["endCursor"]
    raise AssertionError(f"no last page after {limit} pages of {first}: {len(nodes)} rows so far")


def test_every_connection_of_the_schema_is_known() -> None:
    assert CONNECTIONS, "no connection found in the schema"
    unknown = sorted(set(CONNECTIONS) - set(WALKS))
    assert not unknown, f"connections this test does not know how to walk: {unknown}"


#: A small odd page size per connection; all orders by 7 would be 572 requests.
SMALL_PAGES = {"Query.orders": 37}


def sizes() -> Iterator[tuple[str, int]]:
    for name in CONNECTIONS:
        yield name, 100
        yield name, SMALL_PAGES.get(name, 7)


@pytest.mark.parametrize(("name", "first"), list(sizes()))
async def test_every_connection_reaches_its_last_row(wide: Harness, name: str, first: int) -> None:
    spec = WALKS[name]
    variables = spec.variables(wide.world)
    expected = await spec.expected(wide, variables)
    assert len(expected) > first or first == 100, f"{name}: too few rows ({len(expected)}) to page by {first}"
    nodes = await walk(wide, spec, first, variables, limit=len(expected) // first + 2)
    keys = [spec.key(n) for n in nodes]
    assert len(keys) == len(expected), f"{name}: {len(keys)} rows of the source's {len(expected)}"
    assert len(set(keys)) == len(keys), f"{name}: a row came twice"
    if spec.same_keys:
        assert set(keys) == set(expected)


# --- cursors the gateway did not issue ----------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Made-up cursors, whatever the connection; among them the shapes of every list's cursors before they
#: carried a version and a kind (an upstream cursor, an order key, an item, an audit position).
MADE_UP = {
    "empty": "",
    "random base64": _b64(bytes(range(7, 250, 9))),
    "not base64": "!!not a cursor!!",
    "garbage bytes": "\x00\x01\xff\ufffd\u202e",
    "very long": "A" * 5_000,
    "unversioned upstream cursor": _b64(b'["bm90IGEgY3Vyc29y", 1]'),
    "unversioned start": _b64(b'["", 5]'),
    "unversioned order key": _b64(b"[1241124, 5000001]"),
    "unversioned item": _b64(b'["A00001"]'),
    "unversioned audit position": _b64(b'["2026-01-01T00:00:00+00:00", "w", 1]'),
    "json object": _b64(b'{"after": 1}'),
}


@pytest.fixture(scope="module")
async def issued(wide: Harness) -> dict[str, str]:
    """A cursor each connection issued: the second edge's of its first page."""
    cursors = {}
    for name in CONNECTIONS:
        spec = WALKS[name]
        body = await wide.query(spec.document, {**spec.variables(wide.world), "first": 2, "after": None})
        cursors[name] = at(body, spec.path)["edges"][1]["cursor"]
    return cursors


def forged(name: str, issued: dict[str, str]) -> dict[str, str]:
    own = issued[name]
    return {**MADE_UP, "truncated": own[: len(own) // 2], "one character short": own[:-1],
            **{f"a cursor of {other}": cursor for other, cursor in issued.items() if other != name}}


@pytest.mark.parametrize("name", CONNECTIONS)
async def test_a_cursor_the_gateway_did_not_issue_is_bad_input_before_any_upstream_call(
        wide: Harness, issued: dict[str, str], name: str) -> None:
    spec = WALKS[name]
    variables = spec.variables(wide.world)
    for what, cursor in forged(name, issued).items():
        assert cursor != issued[name]
        wide.reset_counts()
        body = await wide.query(spec.document, {**variables, "first": 5, "after": cursor})
        errors = body.get("errors") or []
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], (what, body)
        assert "`after`" in errors[0]["message"], (what, errors)
        assert spec.own_calls(wide) == 0, (what, wide.upstream, wide.sql)
        if len(spec.path) == 1:  # a root list: nothing at all was called
            assert wide.sql == [] and all(t.total == 0 for t in wide.upstream.values()), what


@pytest.mark.parametrize("name", CONNECTIONS)
async def test_an_edge_cursor_resumes_right_after_its_edge(wide: Harness, name: str) -> None:
    spec = WALKS[name]
    variables = spec.variables(wide.world)
    body = await wide.query(spec.document, {**variables, "first": 3, "after": None})
    edges = at(body, spec.path)["edges"]
    resumed = await wide.query(spec.document, {**variables, "first": 1, "after": edges[1]["cursor"]})
    assert "errors" not in resumed, resumed
    assert [e["node"] for e in at(resumed, spec.path)["edges"]] == [edges[2]["node"]]


async def test_lists_known_to_be_empty_still_refuse_a_cursor_they_did_not_issue(wide: Harness) -> None:
    """A CRM-only customer has no ERP orders and an ERP-only one no interactions: the empty answer is
    given without a call, but a made-up cursor is still refused."""
    linked = {crm_id for crm_id, _ in wide.world.manual_links}
    c = next(c for c in wide.world.customers if c.crm_erp_number is None and c.crm_id not in linked)
    crm_only, erp_only = gid("Customer", f"crm:{c.crm_id}"), gid("Customer", c.erp_number)
    queries = [
        ("query($id: ID!, $after: String) { customer(id: $id) { orders(after: $after) { edges { cursor } } } }",
         crm_only),
        ("query($id: ID!, $after: String) { customer(id: $id) { interactions(after: $after) { edges { cursor } } } }",
         erp_only),
        ("query($id: ID!, $after: String) { orders(after: $after, filter: {customer: $id}) { edges { cursor } } }",
         crm_only),
    ]
    for query, customer in queries:
        empty = await wide.query(query, {"id": customer, "after": None})
        assert "errors" not in empty, empty
        body = await wide.query(query, {"id": customer, "after": MADE_UP["random base64"]})
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], (query, body)
