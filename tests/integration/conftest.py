from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from demo.erp.seed import seed
from demo.world import Sizes, World
from tests.integration.gateway_harness import Harness, running_gateway

SMALL = Sizes(customers=300, orders=4_000, items=60, purchase_orders=150)


@pytest.fixture(scope="session")
def world() -> World:
    return World(seed=11, sizes=SMALL)


@pytest.fixture(scope="session")
async def erp_sqlite_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('erp') / 'erp.db'}"
    await seed(url, world)
    return url


@pytest.fixture(scope="session")
async def gateway(world: World, erp_sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Harness]:
    db = Path(tmp_path_factory.mktemp("gateway")) / "gateway.db"
    async with running_gateway(world, erp_sqlite_url, db) as harness:
        yield harness


@pytest.fixture
def gw(gateway: Harness) -> Harness:
    """The shared gateway with its upstream counters reset."""
    gateway.reset_counts()
    return gateway
