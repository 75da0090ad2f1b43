"""The schema is a contract with the frontend teams: committed as `schema.graphql`, described throughout, and
never broken by accident (a breaking change needs a deprecation first, or an allow-list entry with a reason)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    is_introspection_type,
    is_specified_scalar_type,
)

from gateway.app import gateway_schema
from gateway.schema_contract import SchemaFileError, compare, git_file, read_allowed, schema_sdl

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "schema.graphql"
ALLOWED = ROOT / "schema-breaking-allowed.txt"
#: The branch whose schema clients use; CI compares the code's schema with its copy there.
BASELINE_BRANCHES = ("main", "origin/main")
REGENERATE = "uv run gateway schema print --output schema.graphql"
CHECK = "uv run gateway schema print | uv run gateway schema check main:schema.graphql -"


@pytest.fixture(scope="module")
def code_sdl() -> str:
    return schema_sdl(gateway_schema())


def test_committed_schema_is_the_codes_schema(code_sdl: str) -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    if committed != code_sdl:
        lines = difflib.unified_diff(committed.splitlines(keepends=True), code_sdl.splitlines(keepends=True),
                                     "schema.graphql (committed)", "the code's schema")
        diff = "".join(list(lines)[:60])
        pytest.fail(f"schema.graphql is not the schema the code builds. Check the change for breaking changes "
                    f"first (`{CHECK}`), then run `{REGENERATE}` and commit the file.\n{diff}", pytrace=False)


def baseline() -> tuple[str, str]:
    """The schema clients use now and where it came from: `schema.graphql` on the main branch when git has it,
    else the committed file (in a clean clone of main the two are the same)."""
    for branch in BASELINE_BRANCHES:
        text = git_file(branch, "schema.graphql", cwd=ROOT)
        if text is not None:
            return text, f"{branch}:schema.graphql"
    if not COMMITTED.exists():
        pytest.fail(f"schema.graphql is missing: run `{REGENERATE}` and commit it", pytrace=False)
    return COMMITTED.read_text(encoding="utf-8"), "the committed schema.graphql (no git, or no copy on main)"


def test_no_breaking_change_without_a_deliberate_step(code_sdl: str) -> None:
    old, name = baseline()
    allowed = read_allowed(ALLOWED.read_text(encoding="utf-8")) if ALLOWED.exists() else {}
    blocking = [c for c in compare(old, code_sdl, allowed=allowed, old_name=name) if c.blocking]
    if blocking:
        pytest.fail(f"breaking changes against {name}:\n" + "".join(f"  {c.description}\n" for c in blocking)
                    + "Operations that use these fail. Deprecate the element first and remove it later "
                      "(`@deprecated(reason: ...)`), or, if every client is known to cope, add a line "
                      f"`<change> -- <why it may ship>` to {ALLOWED.name}. `{CHECK}` lists them.", pytrace=False)


def _described_elements(schema: GraphQLSchema) -> Iterator[tuple[str, str | None, str | None]]:
    """(schema coordinate, description, deprecation reason) of every element frontend developers read."""
    for type_ in schema.type_map.values():
        if is_introspection_type(type_) or is_specified_scalar_type(type_):
            continue
        yield from _elements_of(type_)


def _elements_of(type_: GraphQLNamedType) -> Iterator[tuple[str, str | None, str | None]]:
    yield type_.name, type_.description, None
    if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
        for name, field in type_.fields.items():
            yield f"{type_.name}.{name}", field.description, field.deprecation_reason
            for arg_name, arg in field.args.items():
                yield f"{type_.name}.{name}({arg_name}:)", arg.description, arg.deprecation_reason
    elif isinstance(type_, GraphQLInputObjectType):
        for name, input_field in type_.fields.items():
            yield f"{type_.name}.{name}", input_field.description, input_field.deprecation_reason
    elif isinstance(type_, GraphQLEnumType):
        for name, value in type_.values.items():
            yield f"{type_.name}.{name}", value.description, value.deprecation_reason


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    missing = [coordinate for coordinate, description, _ in _described_elements(gateway_schema()._schema)
               if not (description or "").strip()]
    assert not missing, f"describe these for the frontend teams (what it means, units, format, source): {missing}"


def test_every_deprecation_gives_a_reason() -> None:
    vague = {"", "no longer supported"}  # graphql-core's default reason says nothing
    bare = [coordinate for coordinate, _, reason in _described_elements(gateway_schema()._schema)
            if reason is not None and reason.strip().lower() in vague]
    assert not bare, f"say why and what to use instead: {bare}"


def test_the_walk_sees_every_kind_of_element() -> None:
    """The walk above sees types, fields, arguments, input fields and enum values (a check of the check)."""
    from graphql import build_schema

    schema = build_schema('"q" type Query { "f" f(a: Int): E  g(i: I): Int @deprecated }\n'
                          '"e" enum E { "x" X  Y }\n input I { j: Int }')
    missing = [c for c, d, _ in _described_elements(schema) if not d]
    deprecated = [(c, r) for c, _, r in _described_elements(schema) if r is not None]
    assert missing == ["Query.f(a:)", "Query.g", "Query.g(i:)", "E.Y", "I", "I.j"]
    assert deprecated == [("Query.g", "No longer supported")]


OLD = '''
type Query {
  customer: Customer
}
type Customer {
  name: String
  fax: String @deprecated(reason: "Use phone.")
  telex: String
  status: Status
}
enum Status { ACTIVE INACTIVE }
'''


def test_removing_a_deprecated_field_may_ship_an_undeprecated_one_may_not() -> None:
    new = OLD.replace('  fax: String @deprecated(reason: "Use phone.")\n', "").replace("  telex: String\n", "")
    changes = {c.coordinate: c for c in compare(OLD, new, allowed={})}
    assert changes["Customer.fax"].excuse == "deprecated: Use phone." and not changes["Customer.fax"].blocking
    assert changes["Customer.telex"].blocking
    # Without a policy every breaking change blocks.
    assert all(c.blocking for c in compare(OLD, new))


def test_an_allow_list_entry_with_a_reason_lets_a_breaking_change_ship() -> None:
    new = OLD.replace("INACTIVE ", "")
    allowed = read_allowed("# why each may ship\n\nEnum value Status.INACTIVE was removed. -- no record has it\n")
    [change] = compare(OLD, new, allowed=allowed)
    assert (change.severity, change.coordinate, change.excuse) == ("breaking", "Status.INACTIVE", "no record has it")
    assert not change.blocking


def test_an_allow_list_entry_needs_a_reason() -> None:
    with pytest.raises(SchemaFileError, match="line 1 gives no reason"):
        read_allowed("Field Customer.telex was removed.\n")


def test_dangerous_changes_are_listed_but_do_not_block() -> None:
    [change] = compare(OLD, OLD.replace("INACTIVE ", "INACTIVE ARCHIVED "))
    assert (change.severity, change.kind, change.coordinate) == ("dangerous", "VALUE_ADDED_TO_ENUM", "Status.ARCHIVED")
    assert not change.blocking
