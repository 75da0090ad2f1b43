"""The executor's fast paths answer exactly what graphql-core's own path answers, errors included."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

import pytest
import strawberry

from schema.executor import GatewayExecutionContext


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
