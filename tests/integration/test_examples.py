"""The example queries shipped in GraphiQL and the README run cleanly against the sample systems."""

from __future__ import annotations

import pytest

from gateway.graphiql import example_queries
from tests.integration.gateway_harness import Harness


@pytest.mark.parametrize("name", sorted(example_queries()))
async def test_example_query_runs_without_errors(gw: Harness, name: str) -> None:
    body = await gw.query(example_queries()[name])
    assert "errors" not in body, body
    assert body["data"] and all(v is not None for v in body["data"].values())
