"""The saga log on its own: what `placeOrder`'s saga costs the gateway besides its upstream calls.

`uv run python bench/saga_log.py` runs sagas shaped like `placeOrder` (a pivot step, then a step after it,
each logging a result and outbox changes like the real ones, published to a consumer that does nothing)
through `operations.saga.SagaRunner` on a gateway database as the gateway opens it
(`sources.sql.make_engine`, migrated): a SQLite file in a temporary folder by default (`--folder /dev/shm`
puts it in memory, which shows what the disk's syncs cost), or, with `--postgres` (a server URL as
bench/run.py takes it), the scratch PostgreSQL database `gw_saga_log`, created for the run and dropped
after. The steps call no system, so all the time measured is the saga log's: every state a saga moves to
is committed before the next action, as operations/store.py promises.

It prints the time per saga (p50, p95, sagas/s with `--concurrency` sagas at once), this process's CPU time
per saga (all its threads: SQLite's work included, PostgreSQL's not) and the statements and commits per
saga, counted with SQLAlchemy's events.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.stack import percentile
from gateway.db import upgrade
from operations.changes import Change, ChangeKind
from operations.saga import Done, SagaKind, SagaRunner, Step, StepContext
from operations.store import SagaStore
from sources.sql import make_engine


def place_order_like() -> SagaKind:
    """placeOrder's steps, with the results and changes an order of two lines logs, and no system called."""

    async def write(ctx: StepContext) -> Done:
        order = {"number": 5_050_001, "customer": "100123", "placed": "2026-11-25", "status": "ALLOCATED",
                 "total": {"amount": "1234.50", "currency": "USD"}, "warehouse": "ATL"}
        stock = [{"item": f"BRG0000{n}", "warehouse": "ATL", "onHand": 1_000_000_000, "allocated": 12} for n in (1, 2)]
        lines = [{"order": 5_050_001, "line": n, "item": f"BRG0000{n}", "quantity": 2,
                  "unitPrice": {"amount": "308.62", "currency": "USD"}} for n in (1, 2)]
        changes = (Change(ChangeKind.ORDER_PLACED, "erp", "order", "5050001",
                          {"number": 5_050_001, "customer": "100123", "status": "ALLOCATED"}),
                   *(Change(ChangeKind.STOCK_CHANGED, "erp", "stock", f"{s['item']}@ATL", s) for s in stock))
        return Done({"order": order, "lines": lines, "stock": stock}, changes)

    async def record(ctx: StepContext) -> Done:
        return Done({"crmCustomer": "c0ffee", "interaction": "i-1"},
                    (Change(ChangeKind.INTERACTION_RECORDED, "crm", "interaction", "c0ffee", {"customer": "100123"}),))

    return SagaKind("placeOrder", (Step("write_erp_order", write, pivot=True),
                                   Step("record_crm_interaction", record, after_pivot=True)))


async def _nothing(_: Sequence[Change]) -> None:
    return None


async def run(url: str, sagas: int, concurrency: int, warm_up: int = 20) -> None:
    from operations.outbox import Relay

    engine = make_engine(url, pool_size=5)  # as gateway.app opens the gateway's database
    await upgrade(engine)
    counts = {"statements": 0, "commits": 0}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _statement(*_: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(engine.sync_engine, "commit")
    def _commit(*_: Any) -> None:
        counts["commits"] += 1

    store = SagaStore(engine)
    relay = Relay(store, [_nothing])
    runner = SagaRunner(store, [place_order_like()], publish=relay.deliver)  # as operations.service wires it
    command = {"customer": "100123", "lines": [["BRG00001", 2], ["BRG00002", 2]], "warehouse": "ATL",
               "reference": "BENCH"}
    principal = {"kind": "user", "subject": "bench", "partnerId": None, "tokenId": None}

    async def one() -> float:
        started = time.perf_counter()
        outcome = await runner.run("placeOrder", uuid.uuid4().hex, command, principal, uuid.uuid4().hex)
        if outcome.state != "COMPLETED":
            raise RuntimeError(f"saga {outcome.id} ended {outcome.state}: {outcome.error}")
        return (time.perf_counter() - started) * 1000

    for _ in range(warm_up):
        await one()
    counts.update(statements=0, commits=0)
    latencies: list[float] = []

    async def client(n: int) -> None:
        for _ in range(n):
            latencies.append(await one())

    started, cpu = time.perf_counter(), time.process_time()
    share, rest = divmod(sagas, concurrency)
    await asyncio.gather(*(client(share + (1 if c < rest else 0)) for c in range(concurrency)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    print(f"{url.split(':///', 1)[-1] if url.startswith('sqlite') else url.rsplit('@', 1)[-1]}, concurrency "
          f"{concurrency}: "
          f"saga p50 {statistics.median(latencies):.2f} ms, p95 {percentile(latencies, 95):.2f} ms, "
          f"{len(latencies) / seconds:.0f} sagas/s; per saga {cpu * 1000 / len(latencies):.2f} ms CPU, "
          f"{counts['statements'] / len(latencies):.1f} statements, "
          f"{counts['commits'] / len(latencies):.1f} commits")


async def _scratch(admin_url: str, *, create: bool) -> str:
    """The scratch database `gw_saga_log` beside `admin_url`'s, dropped (and created anew if `create`)."""
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text("DROP DATABASE IF EXISTS gw_saga_log WITH (FORCE)"))
        if create:
            await conn.execute(text("CREATE DATABASE gw_saga_log"))
    await engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/gw_saga_log"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sagas", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="where the SQLite file goes (default: a temporary folder)")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/"
                        "test): the saga log goes to the scratch database gw_saga_log there instead of SQLite")
    args = parser.parse_args()
    if args.postgres:
        url = asyncio.run(_scratch(args.postgres, create=True))
        try:
            asyncio.run(run(url, args.sagas, args.concurrency))
        finally:
            asyncio.run(_scratch(args.postgres, create=False))
        return
    folder = Path(tempfile.mkdtemp(prefix="gw-saga-log-", dir=args.folder))
    asyncio.run(run(f"sqlite+aiosqlite:///{folder / 'gateway.db'}", args.sagas, args.concurrency))


if __name__ == "__main__":
    main()
