"""No argument value makes the gateway fail: every root field, fuzzed from its own argument types.

The fields and their argument types are read from the schema, so a new root field is fuzzed without a
change here. Values are what hostile or careless clients send: empty and very long strings, unicode digits,
control characters, ints at and past the 32-bit edges, global ids of random or garbage types and keys,
enum names that do not exist, input objects with their fields. Whatever comes back may be an error, but
never INTERNAL_ERROR and never a 5xx. The run is derandomized, so CI sees the same examples every time.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLUnionType,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.world import World
from gateway.app import gateway_schema
from tests.integration.gateway_harness import Harness, running_gateway

SCHEMA = gateway_schema()._schema
ROOTS = {"Query": SCHEMA.query_type, "Mutation": SCHEMA.mutation_type}
ROOT_FIELDS = sorted(f"{root}.{name}" for root, t in ROOTS.items() if t is not None for name in t.fields)
NODE_TYPES = sorted(name for name, t in SCHEMA.type_map.items()
                    if isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces))

#: Keys of objects the sample world has, so that fuzzing reaches the paths behind a valid key too.
REAL_KEYS = ["100001", "100002", "5000001", "5000002", "BRG00001", "V00001", "V00002", "DAL", "CHI"]
AWKWARD = ["", " ", "  100001  ", "³", "٣", "١٢٣", "\uff11\uff12\uff13", "0", "-1", "+1", "1e3", "0x10", "2147483648",
           "99999999999999999999", "a,b", "%", "_", "*", "'", '"', "\\", "'; DROP TABLE CUSMAS; --", "\x00",
           "\n", "\u202e", "crm:", "crm:x", "crm:,", "PO-", "\ud7ff", "null", "None"]

texts = st.one_of(
    st.sampled_from(REAL_KEYS + AWKWARD),
    st.text(max_size=24),
    st.text(st.characters(codec="ascii"), max_size=24),
    st.integers(0, 6).map(lambda n: "9" * 10**n),
    st.integers(0, 5).map(lambda n: "x" * 10**n),
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


global_ids = st.one_of(
    st.builds(lambda t, k: _b64(f"{t}:{k}"), st.sampled_from(NODE_TYPES), st.sampled_from(REAL_KEYS)),
    st.builds(lambda t, k: _b64(f"{t}:{k}"),
              st.sampled_from([*NODE_TYPES, "", "Query", "Mutation", "Health", "Money", "Node", "Nope"]) | texts,
              texts),
    st.builds(_b64, texts),
    texts,
    st.integers(-(2**31), 2**31 - 1),
)
# Half of them small and positive, as page sizes are: a bad `first` must not hide the other arguments.
ints = st.one_of(st.integers(1, 20), st.integers(1, 20), st.sampled_from([0, -1, 100, 101, 2**31 - 1, -(2**31)]),
                 st.integers(-(2**31), 2**31 - 1))
scalars: dict[str, st.SearchStrategy[Any]] = {
    "String": texts,
    "ID": global_ids,
    "Int": ints,
    "Float": st.floats(allow_nan=False, allow_infinity=False) | ints,
    "Boolean": st.booleans(),
    "Date": st.dates().map(lambda d: d.isoformat()) | texts,
    "DateTime": st.datetimes().map(lambda d: d.isoformat()) | texts,
}


def _sometimes_null(values: st.SearchStrategy[Any], one_in: int) -> st.SearchStrategy[Any]:
    return st.tuples(st.integers(1, one_in), values).map(lambda drawn: None if drawn[0] == 1 else drawn[1])


def values(t: GraphQLInputType) -> st.SearchStrategy[Any]:
    """Values of input type `t`: mostly ones it accepts, now and then ones it does not (null, a wrong name)."""
    if isinstance(t, GraphQLNonNull):
        return _sometimes_null(_non_null(t.of_type), 10)
    return _sometimes_null(_non_null(t), 4)


def _non_null(t: GraphQLInputType) -> st.SearchStrategy[Any]:
    if isinstance(t, GraphQLList):
        item = values(t.of_type)
        return st.lists(item, max_size=4) | item  # one value stands for a list of it
    if isinstance(t, GraphQLEnumType):
        return st.sampled_from(list(t.values)) | texts
    if isinstance(t, GraphQLInputObjectType):
        return st.fixed_dictionaries(
            {n: values(f.type) for n, f in t.fields.items() if isinstance(f.type, GraphQLNonNull)},
            optional={n: values(f.type) for n, f in t.fields.items() if not isinstance(f.type, GraphQLNonNull)})
    if isinstance(t, GraphQLScalarType):
        return scalars.get(t.name, texts)
    raise TypeError(f"no values for {t}")


def arguments(field: GraphQLField) -> st.SearchStrategy[dict[str, Any]]:
    """Some of a field's arguments (all required ones) with fuzzed values."""
    return st.fixed_dictionaries(
        {n: values(a.type) for n, a in field.args.items() if isinstance(a.type, GraphQLNonNull)},
        optional={n: values(a.type) for n, a in field.args.items() if not isinstance(a.type, GraphQLNonNull)})


def selection(t: GraphQLOutputType) -> str:
    """A small valid selection of `t`: its type name, its scalar fields, and a connection's cursors."""
    while isinstance(t, GraphQLNonNull | GraphQLList):
        t = t.of_type
    if isinstance(t, GraphQLInterfaceType | GraphQLUnionType):
        return "{ __typename }"
    if not isinstance(t, GraphQLObjectType):
        return ""
    leaves = [n for n, f in t.fields.items()
              if not f.args and isinstance(_named(f.type), GraphQLScalarType | GraphQLEnumType)]
    parts = ["__typename", *leaves]
    if "edges" in t.fields:
        parts.append("edges { cursor } pageInfo { hasNextPage }")
    return "{ " + " ".join(parts) + " }"


def _named(t: GraphQLOutputType) -> GraphQLOutputType:
    while isinstance(t, GraphQLNonNull | GraphQLList):
        t = t.of_type
    return t


def operation(coordinate: str, args: dict[str, Any]) -> str:
    root, name = coordinate.split(".")
    field = ROOTS[root].fields[name]  # type: ignore[union-attr]
    declared = ", ".join(f"${n}: {field.args[n].type}" for n in args)
    passed = ", ".join(f"{n}: ${n}" for n in args)
    return (f"{root.lower()}{f'({declared})' if declared else ''} "
            f"{{ {name}{f'({passed})' if passed else ''} {selection(field.type)} }}")


@pytest.fixture(scope="module")
async def fuzz_gw(world: World, erp_sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Harness]:
    """A gateway of its own, on its own copy of the ERP: the mutations fuzzed here may change its CRM, its
    partner systems and its ERP, never the shared ones."""
    folder = Path(tmp_path_factory.mktemp("fuzz"))
    erp = folder / "erp.db"
    shutil.copyfile(erp_sqlite_url.removeprefix("sqlite+aiosqlite:///"), erp)
    async with running_gateway(world, f"sqlite+aiosqlite:///{erp}", folder / "gateway.db") as harness:
        yield harness


def test_every_root_field_is_fuzzed() -> None:
    assert {"Query.node", "Query.nodes", "Query.order", "Mutation.updateCustomerContact"} <= set(ROOT_FIELDS)


@pytest.mark.parametrize("coordinate", ROOT_FIELDS)
@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
async def test_no_argument_value_is_an_internal_error(fuzz_gw: Harness, coordinate: str, data: st.DataObject) -> None:
    root, name = coordinate.split(".")
    args = data.draw(arguments(ROOTS[root].fields[name]), label="arguments")  # type: ignore[union-attr]
    query = operation(coordinate, args)
    response = await fuzz_gw.client.post("/graphql", json={"query": query, "variables": args},
                                         headers={"accept": "application/graphql-response+json"})
    assert response.status_code < 500, (query, args, response.text)
    body = response.json()
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or ()]
    assert "INTERNAL_ERROR" not in codes, (query, args, body)
