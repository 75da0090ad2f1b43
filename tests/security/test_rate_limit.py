"""Rate limits per principal: 429 with Retry-After; shared between gateway instances through Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.secrets import DemoSecrets
from demo.world import World
from tests.integration.gateway_harness import running_gateway

QUERY = {"query": "{ warehouses { code } }"}


async def test_memory_bucket(world: World, erp_sqlite_url: str, tmp_path: Path) -> None:
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db",
                               limits={"rate_per_second": 0.5, "rate_burst": 3}) as gw:
        token = gw.jwt("ops", subject="busy@example.com")
        statuses = [(await gw.client.post("/graphql", json=QUERY, headers=gw.bearer(token))) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert int(statuses[-1].headers["retry-after"]) >= 1
        assert statuses[-1].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        other = await gw.client.post("/graphql", json=QUERY, headers=gw.bearer(gw.jwt("ops", subject="calm@x")))
        assert other.status_code == 200  # buckets are per principal


@pytest.mark.redis
async def test_two_instances_share_the_budget_through_redis(world: World, erp_sqlite_url: str, tmp_path: Path,
                                                            redis_url: str) -> None:
    secrets = DemoSecrets.generate()
    limits = {"rate_per_second": 0.2, "rate_burst": 4, "redis_url": redis_url}
    async with (running_gateway(world, erp_sqlite_url, tmp_path / "a.db", secrets=secrets, limits=limits) as a,
                running_gateway(world, erp_sqlite_url, tmp_path / "b.db", secrets=secrets, limits=limits) as b):
        token = a.jwt("ops", subject="shared@example.com")
        statuses = []
        for gateway in (a, b, a, b, a, b):
            r = await gateway.client.post("/graphql", json=QUERY, headers=gateway.bearer(token))
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
