"""The audit sink on its own: 32 concurrent writers; what a write waits for, and records per second.

`uv run python bench/audit_sink.py --synchronous FULL --window-ms 1` (SQLite), or with
`--url postgresql+asyncpg://postgres@127.0.0.1:5432/test` (a scratch table is created there and dropped).
Each write returns only
once its record is committed, so its latency is what the audit adds to a request's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from auth.audit import AuditRecord
from gateway.audit.sink import SqlAuditSink
from gateway.db import upgrade
from sources.sql import make_engine

DROP_ALL = "DROP TABLE IF EXISTS audit_events, trusted_documents, api_tokens, customer_links, alembic_version CASCADE"


def _record(writer: int, n: int) -> AuditRecord:
    return AuditRecord(id=f"{writer}-{n}", time="2026-11-25T00:00:00+00:00", request_id=f"r{writer}-{n}",
                       client_ip="127.0.0.1", subject="bench", principal_kind="user", token_id=None, partner_id=None,
                       operation_type="query", operation_name="Customer360", document="sha256:" + "0" * 64,
                       fields=("Query.customer", "Customer.name", "Customer.email"), pii_fields=("Customer.email",))


async def run(synchronous: str, window_ms: float, writers: int, per_writer: int, url: str | None = None) -> None:
    folder = Path(tempfile.mkdtemp())
    engine = make_engine(url or f"sqlite+aiosqlite:///{folder / 'audit.db'}")
    if url is None:
        @event.listens_for(engine.sync_engine, "connect")
        def _mode(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()
    else:
        async with engine.begin() as conn:  # a scratch database state: no earlier migrations or rows
            await conn.execute(text(DROP_ALL))

    await upgrade(engine)
    sink = SqlAuditSink(engine, window_ms=window_ms)
    await sink.start()
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for n in range(per_writer):
            started = time.perf_counter()
            await sink.write(_record(w, n))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    total = time.perf_counter() - started
    await sink.aclose()
    if url is not None:
        async with engine.begin() as conn:
            await conn.execute(text(DROP_ALL))
    await engine.dispose()
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    where = "postgresql" if url else f"sqlite synchronous={synchronous}"
    print(f"{where} window={window_ms}ms writers={writers}: "
          f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, {len(latencies) / total:.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--window-ms", type=float, default=1.0)
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--per-writer", type=int, default=100)
    parser.add_argument("--url", help="a PostgreSQL URL instead of a temporary SQLite file")
    args = parser.parse_args()
    asyncio.run(run(args.synchronous, args.window_ms, args.writers, args.per_writer, args.url))


if __name__ == "__main__":
    main()
