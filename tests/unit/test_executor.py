"""The executor's fast paths answer exactly what graphql-core's own path answers, errors included."""

from __future__ import annotations

import enum
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from strawberry.permission import PermissionExtension

from auth.principal import Principal, PrincipalKind
from resolvers.permissions import Scopes
from schema.executor import GatewayExecutionContext
from schema.types.common import NOT_LOADED


@strawberry.enum
class Colour(enum.Enum):
    RED = "r"
    BLUE = "b"


@strawberry.type
class Price:
    amount: Decimal
    currency: str


@strawberry.type
class Thing:
    name: str
    colour: Colour
    price: Price | None
    note: str | None = None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


GOOD = [Thing(name="a", colour=Colour.RED, price=Price(amount=Decimal("1.50"), currency="EUR")),
        Thing(name="b", colour=Colour.BLUE, price=None, note="n")]
# A null where the type forbids it, and a value the enum refuses: the ordinary path must report them.
BAD = [*GOOD, Thing(name=None, colour=Colour.RED, price=None),  # type: ignore[arg-type]
       Thing(name="c", colour="purple", price=Price(amount=Decimal(2), currency=None))]  # type: ignore[arg-type]


@strawberry.type
class Query:
    @strawberry.field
    def good(self) -> list[Thing]:
        return GOOD

    @strawberry.field
    def bad(self) -> list[Thing | None]:
        return BAD


fast = strawberry.Schema(Query, execution_context_class=GatewayExecutionContext)
plain = strawberry.Schema(Query)


def _answer(schema: strawberry.Schema, query: str) -> tuple[Any, list[tuple[str, tuple[Any, ...] | None]]]:
    result = schema.execute_sync(query)
    return result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or ())


@pytest.mark.parametrize("query", [
    "{ good { name colour price { amount currency } note } }",
    "{ good { ...F } } fragment F on Thing { n: name shout price { currency } }",
    "{ good { name @skip(if: true) colour price @include(if: false) { amount } __typename } }",
    "{ bad { name colour price { amount currency } } }",
    "{ bad { price { currency } } }",
    "{ good { price { amount } } things: good { name colour } }",
    "{ bad { note colour } }",
])
def test_fast_paths_answer_like_graphql_core(query: str) -> None:
    assert _answer(fast, query) == _answer(plain, query)


def test_bad_values_still_fail_at_their_paths() -> None:
    data, errors = _answer(fast, "{ bad { name colour price { amount currency } } }")
    assert data["bad"][:2] == [{"name": "a", "colour": "RED", "price": {"amount": "1.50", "currency": "EUR"}},
                               {"name": "b", "colour": "BLUE", "price": None}]
    assert data["bad"][2:] == [None, None]
    assert {path for _, path in errors} == {("bad", 2, "name"), ("bad", 3, "colour")}


# A relation a list resolver resolved ahead still needs the field's scopes (schema.executor.PRELOADED).
@strawberry.type(name="Product")
class PreProduct:
    sku: str


@strawberry.type(name="OrderLine")
class PreLine:
    quantity: int
    preloaded_product: strawberry.Private[object] = NOT_LOADED

    @strawberry.field(extensions=[PermissionExtension([Scopes(frozenset({"inventory:read"}))], use_directives=False)])
    def product(self) -> PreProduct | None:
        return self.preloaded_product  # type: ignore[return-value]


@strawberry.type
class LineQuery:
    @strawberry.field
    def lines(self) -> list[PreLine]:
        return [PreLine(quantity=2, preloaded_product=PreProduct(sku="X1"))]


@pytest.mark.parametrize("scopes", [frozenset(), frozenset({"inventory:read"})])
def test_a_preloaded_relation_still_needs_its_scope(scopes: frozenset[str]) -> None:
    context = SimpleNamespace(principal=Principal(subject="u", kind=PrincipalKind.USER, scopes=scopes))
    query = "{ lines { quantity product { sku } } }"
    answers = [schema.execute_sync(query, context_value=context)
               for schema in (strawberry.Schema(LineQuery, execution_context_class=GatewayExecutionContext),
                              strawberry.Schema(LineQuery))]
    assert answers[0].data == answers[1].data
    fast, plain = ([(e.message, e.path) for e in answer.errors or ()] for answer in answers)
    assert fast == plain
    if scopes:
        assert answers[0].data == {"lines": [{"quantity": 2, "product": {"sku": "X1"}}]}
    else:
        assert answers[0].data == {"lines": [{"quantity": 2, "product": None}]}
        assert [e.extensions["code"] for e in answers[0].errors or ()] == ["FORBIDDEN"]
