"""The example queries shipped in GraphiQL and the README run cleanly against the sample systems."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationType, parse

from demo.world import World
from gateway.graphiql import example_queries
from tests.integration.gateway_harness import Harness, running_gateway


def _writes(text: str) -> bool:
    return any(getattr(d, "operation", None) is OperationType.MUTATION for d in parse(text).definitions)


@pytest.mark.parametrize("name", sorted(example_queries()))
async def test_example_query_runs_without_errors(gateway: Harness, world: World, erp_sqlite_url: str,
                                                 tmp_path: Path, name: str) -> None:
    text = example_queries()[name]
    if _writes(text):
        # A mutation writes: it runs against a copy of the ERP, never the session's shared one.
        copy = tmp_path / "erp.db"
        shutil.copyfile(erp_sqlite_url.removeprefix("sqlite+aiosqlite:///"), copy)
        async with running_gateway(world, f"sqlite+aiosqlite:///{copy}", tmp_path / "gateway.db") as gw:
            body = await gw.query(text)
    else:
        gateway.reset_counts()
        body = await gateway.query(text)
    assert "errors" not in body, body
    assert body["data"] and all(v is not None for v in body["data"].values())
    payloads: list[Any] = list(body["data"].values())
    assert not any(isinstance(p, dict) and p.get("userErrors") for p in payloads), body  # accepted, not refused
