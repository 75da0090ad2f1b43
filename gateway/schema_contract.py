"""The schema as a contract: its SDL, the changes between two versions, and which breaking ones may ship.

A breaking change (graphql-core's classification: a removed field, a narrowed type...) may ship only after a
deliberate step: the element was deprecated in the old schema, or the change is listed, with a reason, in
the allow-list file (`schema-breaking-allowed.txt`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import strawberry
from graphql import GraphQLError, GraphQLSchema, build_schema
from graphql.utilities.find_schema_changes import BreakingChangeType, DangerousChangeType, find_schema_changes
from graphql.utilities.resolve_schema_coordinate import (
    ResolvedEnumValue,
    ResolvedField,
    ResolvedFieldArgument,
    ResolvedInputField,
    resolve_schema_coordinate,
)

#: Removals that a deprecation of the removed element in the old schema announces.
_REMOVALS = (BreakingChangeType.FIELD_REMOVED, BreakingChangeType.ARG_REMOVED,
             BreakingChangeType.VALUE_REMOVED_FROM_ENUM)
#: A schema coordinate in graphql-core's change descriptions: `Type.field`, `Type.field(arg:)`, `Enum.VALUE`.
_COORDINATE = re.compile(r"[_A-Za-z]\w*\.[_A-Za-z]\w*(?:\([_A-Za-z]\w*:\))?")
_ALLOW_SEPARATOR = " -- "


class SchemaFileError(ValueError):
    """An SDL text that cannot be read or built, or an allow-list line without a reason."""


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One change from an old schema to a new one, as graphql-core classifies and describes it."""

    severity: str  # "breaking" | "dangerous"
    kind: str  # graphql-core's change type, e.g. FIELD_REMOVED
    description: str  # e.g. "Field Customer.creditLimit was removed."
    coordinate: str | None  # the schema coordinate it concerns, e.g. Customer.creditLimit
    excuse: str | None = None  # why a breaking change may ship: its deprecation, or its allow-list reason

    @property
    def blocking(self) -> bool:
        """A breaking change nothing excuses."""
        return self.severity == "breaking" and self.excuse is None


def schema_sdl(schema: strawberry.Schema) -> str:
    """The SDL of a schema: types sorted by name, descriptions and schema directives included."""
    return schema.as_str().rstrip("\n") + "\n"


def build(sdl: str, name: str) -> GraphQLSchema:
    try:
        return build_schema(sdl)
    except (GraphQLError, TypeError) as exc:
        raise SchemaFileError(f"{name} is not a GraphQL schema: {exc}") from None


def compare(old_sdl: str, new_sdl: str, *, allowed: Mapping[str, str] | None = None,
            old_name: str = "old", new_name: str = "new") -> list[SchemaChange]:
    """The breaking and dangerous changes from `old_sdl` to `new_sdl`, breaking first.

    With `allowed` (change description -> reason, `read_allowed`) the policy applies: a breaking change is
    excused by its allow-list entry, or, for a removal, by the removed element's deprecation in the old schema.
    Without it every breaking change blocks.
    """
    old, new = build(old_sdl, old_name), build(new_sdl, new_name)
    changes = []
    for change in find_schema_changes(old, new):
        if isinstance(change.type, BreakingChangeType):
            severity = "breaking"
        elif isinstance(change.type, DangerousChangeType):
            severity = "dangerous"
        else:
            continue
        found = _COORDINATE.search(change.description)
        coordinate = found.group() if found else None
        excuse = None
        if severity == "breaking" and allowed is not None:
            excuse = allowed.get(change.description)
            if excuse is None and change.type in _REMOVALS and coordinate is not None:
                excuse = _deprecation(old, coordinate)
        changes.append(SchemaChange(severity, change.type.name, change.description, coordinate, excuse))
    return sorted(changes, key=lambda c: (c.severity != "breaking", c.description))


def _deprecation(schema: GraphQLSchema, coordinate: str) -> str | None:
    """"deprecated: <reason>" if the element at `coordinate` is deprecated in `schema`."""
    try:
        resolved = resolve_schema_coordinate(schema, coordinate)
    except GraphQLError:
        return None
    element: object = None
    if isinstance(resolved, ResolvedField):
        element = resolved.field
    elif isinstance(resolved, ResolvedFieldArgument):
        element = resolved.field_argument
    elif isinstance(resolved, ResolvedInputField):
        element = resolved.input_field
    elif isinstance(resolved, ResolvedEnumValue):
        element = resolved.enum_value
    reason = getattr(element, "deprecation_reason", None)
    return None if reason is None else f"deprecated: {reason}"


def read_allowed(text: str) -> dict[str, str]:
    """The allow-list: one breaking change a line, as `gateway schema check` describes it, ` -- ` and the reason.
    Blank lines and `#` comments are ignored; a line without a reason is an error."""
    allowed = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        change, _, reason = line.partition(_ALLOW_SEPARATOR)
        if not reason.strip():
            raise SchemaFileError(f"allow-list line {number} gives no reason: write `<change>{_ALLOW_SEPARATOR}"
                                  "<why it may ship>`")
        allowed[change.strip()] = reason.strip()
    return allowed


def git_file(revision: str, path: str, *, cwd: Path) -> str | None:
    """The text of `path` at git `revision` (`git show revision:path`); None if git, the revision or the
    file is not there."""
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run([git, "show", f"{revision}:{path}"], cwd=cwd,  # noqa: S603 - fixed program, no shell
                          capture_output=True, text=True, encoding="utf-8", check=False)
    return done.stdout if done.returncode == 0 else None
