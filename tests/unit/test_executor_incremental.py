"""With @defer and @stream, the executor's fast paths deliver the same parts as graphql-core's own path."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from graphql import ExperimentalIncrementalExecutionResults
from strawberry.schema.config import StrawberryConfig

from schema.executor import GatewayExecutionContext
from tests.unit.test_executor import Query

config = StrawberryConfig(enable_experimental_incremental_execution=True)
fast = strawberry.Schema(Query, execution_context_class=GatewayExecutionContext, config=config)
plain = strawberry.Schema(Query, config=config)


async def _parts(schema: strawberry.Schema, query: str) -> list[dict[str, Any]]:
    result: Any = await schema.execute(query)
    if not isinstance(result, ExperimentalIncrementalExecutionResults):
        return [{"data": result.data, "errors": [(e.message, e.path) for e in result.errors or ()]}]
    return [result.initial_result.formatted, *[r.formatted async for r in result.subsequent_results]]


@pytest.mark.parametrize("query", [
    "{ good { name ... @defer { colour price { amount currency } } } }",
    "{ ... @defer { good { name colour } } }",
    # The same field in the first part and in a deferred one: each part gets only what is new to it.
    "{ good { name price { amount } } ... @defer { good { name colour price { amount currency } } } }",
    "{ good { name ... @defer(label: \"a\") { colour ... @defer(label: \"b\") { price { currency } } } } }",
    "{ good @stream(initialCount: 1) { name colour price { amount } } }",
    "{ good @stream(initialCount: 0) { name } bad { name ... @defer { colour } } }",
    "{ bad @stream(initialCount: 1) { name colour price { currency } } }",
    "{ good { name ... @defer(if: false) { colour } } }",
])
async def test_fast_paths_deliver_the_same_parts(query: str) -> None:
    assert await _parts(fast, query) == await _parts(plain, query)
