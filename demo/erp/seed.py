"""Seed the legacy ERP database from a `World`, in legacy formats, with a progress callback.

`python -m demo.erp.seed --url URL --seed 42` does it from the command line with a progress bar.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from demo.erp.schema import CUSMAS, DEMOSEED, ITMBAL, ITMMAS, NUMCTL, ORDDTL, ORDHDR, VENMAS, WHSMAS, metadata
from demo.world import Sizes, World, cyymmdd

Progress = Callable[[str, int, int], None]
T = TypeVar("T")
BATCH = 2_000
#: NUMCTL's range of order numbers, as the ERP keys it (CHAR(8), left-aligned).
ORDER_RANGE = "ORDHDR".ljust(8)


@dataclass(frozen=True, slots=True)
class SeedStats:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _sizes_json(world: World) -> str:
    return json.dumps(asdict(world.sizes), sort_keys=True)


def _chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def customer_rows(world: World) -> list[dict[str, Any]]:
    return [{"CMCUNO": c.erp_number.rjust(8), "CMNAME": c.name.ljust(40)[:40], "CMPHON": c.phone_digits.ljust(15),
             "CMCRLM": c.credit_limit_cents, "CMBALD": c.balance_cents, "CMTERM": c.terms, "CMSTAT": c.status,
             "CMCURR": c.currency} for c in world.customers]


def reference_rows(world: World) -> dict[Table, list[dict[str, Any]]]:
    """Everything but customers and orders: small tables."""
    return {
        VENMAS: [{"VNVNNO": v.number, "VNNAME": v.name.upper().ljust(40), "VNTYPE": v.kind, "VNCTRY": v.country}
                 for v in world.vendors],
        WHSMAS: [{"WHWHSE": code, "WHDESC": desc.ljust(30), "WHCITY": city.upper().ljust(30), "WHCTRY": country}
                 for code, desc, city, country in world.warehouses],
        ITMMAS: [{"IMITNO": i.number.ljust(15), "IMDESC": i.description.ljust(40)[:40], "IMUOM": i.uom.ljust(2),
                  "IMVNNO": i.main_vendor, "IMLPRC": i.list_price_cents} for i in world.items],
        ITMBAL: [{"IBITNO": s.item.ljust(15), "IBWHSE": s.warehouse, "IBQOH": s.on_hand, "IBQAL": s.allocated}
                 for s in world.stock],
    }


async def _insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], progress: Progress | None,
                  done: int, total: int) -> int:
    if rows:
        await conn.execute(table.insert(), rows)
    done += len(rows)
    if progress:
        progress(table.name, done, total)
    return done


async def seed(url: str, world: World, *, progress: Progress | None = None) -> SeedStats:
    """Drop and recreate the ERP tables and load the world into them."""
    started = time.perf_counter()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    rows: dict[str, int] = {}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        async with engine.begin() as conn:
            for table, table_rows in [*reference_rows(world).items(), (CUSMAS, customer_rows(world))]:
                done = 0
                for chunk in _chunks(table_rows, BATCH):
                    done = await _insert(conn, table, chunk, progress, done, len(table_rows))
                rows[table.name] = done
        total_orders = world.sizes.orders
        done_orders = done_lines = last_order = 0
        for batch in _chunks(world.orders(), BATCH):
            last_order = max(last_order, *(o.number for o in batch))
            headers = [{"OHORNO": o.number, "OHCUNO": o.customer.rjust(8), "OHORDT": cyymmdd(o.placed),
                        "OHSTAT": o.status, "OHTOTL": o.total_cents, "OHCURR": o.currency, "OHWHSE": o.warehouse}
                       for o in batch]
            lines = [{"ODORNO": line.order, "ODLINE": line.line, "ODITNO": line.item.ljust(15),
                      "ODQORD": line.quantity, "ODUPRC": line.unit_price_cents} for o in batch for line in o.lines]
            async with engine.begin() as conn:
                done_orders = await _insert(conn, ORDHDR, headers, progress, done_orders, total_orders)
                await conn.execute(ORDDTL.insert(), lines)
            done_lines += len(lines)
        rows[ORDHDR.name], rows[ORDDTL.name] = done_orders, done_lines
        async with engine.begin() as conn:
            await conn.execute(NUMCTL.insert(), [{"NCKEY": ORDER_RANGE, "NCNEXT": last_order + 1}])
            await conn.execute(DEMOSEED.insert(), [{"SEED": world.seed, "SIZES": _sizes_json(world)}])
    finally:
        await engine.dispose()
    return SeedStats(rows=rows, seconds=time.perf_counter() - started)


async def is_seeded(url: str, world: World) -> bool:
    """Whether the database holds exactly this world (same seed and sizes), completely seeded.

    A database seeded before the ERP had its number range table (NUMCTL) is not: seeding it again gives
    it the table, with the next free order number.
    """
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            found = (await conn.execute(select(DEMOSEED.c.SEED, DEMOSEED.c.SIZES))).all()
            await conn.execute(select(NUMCTL.c.NCNEXT).limit(1))
    except (SQLAlchemyError, OSError):
        return False
    finally:
        await engine.dispose()
    return [(r.SEED, r.SIZES) for r in found] == [(world.seed, _sizes_json(world))]


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    parser = argparse.ArgumentParser(description="Seed the sample ERP database.")
    parser.add_argument("--url", default="sqlite+aiosqlite:///demo-data/erp.db")
    parser.add_argument("--seed", type=int, default=42)
    defaults = Sizes()
    parser.add_argument("--customers", type=int, default=defaults.customers)
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--items", type=int, default=defaults.items)
    args = parser.parse_args(argv)
    world = World(seed=args.seed, sizes=Sizes(customers=args.customers, orders=args.orders, items=args.items))
    console = Console()
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, Any] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        stats = asyncio.run(seed(args.url, world, progress=report))
    console.print(f"seeded in {stats.seconds:.1f}s: " + ", ".join(f"{k} {v:,}" for k, v in stats.rows.items()))


if __name__ == "__main__":
    main()
