"""The ERP adapter against the real PostgreSQL and MariaDB servers: same answers as on SQLite.

These need the servers on this machine. Locally they skip when a server is absent; under CI=true the
fixtures fail instead.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from demo.erp.seed import seed
from demo.world import World
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_customer_360 import CUSTOMER_360
from tests.integration.test_orders import ORDER_LIST

PRODUCTS = """{ products(first: 20, filter: {text: "valve"}) {
    edges { cursor node { sku name listPrice { amount } } } } }"""


async def _answers(gw: Harness, world: World) -> list[dict[str, Any]]:
    c = linked_customer(world, min_orders=11, min_interactions=5)
    cid = base64.b64encode(f"Customer:{c.erp_number}".encode()).decode()
    out = []
    for query, variables in ((CUSTOMER_360, {"id": cid}), (ORDER_LIST, {"first": 50}),
                             (ORDER_LIST, {"first": 20, "filter": {"statuses": ["OPEN"]}}), (PRODUCTS, None)):
        gw.reset_counts()
        body = await gw.query(query, variables)
        assert "errors" not in body, body
        out.append({"data": body["data"], "statements": len(gw.sql)})
    return out


async def _compare(url: str, world: World, gateway: Harness, tmp_path: Path) -> None:
    await seed(url, world)
    expected = await _answers(gateway, world)
    async with running_gateway(world, url, tmp_path / "gateway.db") as other:
        assert await _answers(other, world) == expected
        with other.unwatched_sql():  # as in production: on PostgreSQL, prepared reads run on the driver itself
            unwatched = await _answers(other, world)
        assert [a["data"] for a in unwatched] == [e["data"] for e in expected]
        statements = other.app.state.services.erp._statements.values()
        assert any(s.sql for s in statements) == url.startswith("postgresql"), statements


@pytest.mark.postgres
async def test_erp_adapter_on_postgresql(postgres_url: str, world: World, gateway: Harness, tmp_path: Path) -> None:
    await _compare(postgres_url, world, gateway, tmp_path)


@pytest.mark.mariadb
async def test_erp_adapter_on_mariadb(mariadb_url: str, world: World, gateway: Harness, tmp_path: Path) -> None:
    await _compare(mariadb_url, world, gateway, tmp_path)
