"""What the audit trail adds to a request, at concurrency 32, over real HTTP.

Starts two gateways (audit on, audit off) as separate processes on this machine, drives each with the
same load of `{ health { status } }` (no upstream call, so the difference is the audit's group commit),
and reports latency percentiles and the difference. `uv run python bench/audit_overhead.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from demo.run import _wait_for_port

QUERY = {"query": "{ health { status } }"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(folder: Path, audit: bool) -> Path:
    path = folder / f"gateway-{'audit' if audit else 'plain'}.toml"
    path.write_text(f'database_url = "sqlite+aiosqlite:///{folder / ("a.db" if audit else "p.db")}"\n'
                    f'[auth]\njwt_secret = "{"b" * 40}"\n[limits]\nrate_per_second = 1000000\nrate_burst = 1000000\n'
                    f"[audit]\nenabled = {'true' if audit else 'false'}\n")
    return path


async def _drive(url: str, concurrency: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            r = await client.post(url, json=QUERY)
            r.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(50):  # warm up connections and the gateway
            await client.post(url, json=QUERY)
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, audit in (("audit off", False), ("audit on", True)):
            port = _port()
            env = {**os.environ, "GATEWAY_CONFIG": str(_config(folder, audit))}
            process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],  # noqa: S603
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_for_port(port, process)
                results[name] = asyncio.run(_drive(f"http://127.0.0.1:{port}/graphql", args.concurrency,
                                                   args.seconds))
            finally:
                process.terminate()
                process.wait(timeout=10)
    table = Table(title=f"health query, concurrency {args.concurrency}, {args.seconds:g} s each, real HTTP")
    for column in ("", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for name, values in results.items():
        table.add_row(name, str(len(values)), f"{len(values) / args.seconds:.0f}",
                      *(f"{_pct(values, p):.2f}" for p in (50, 95, 99)))
    console = Console()
    console.print(table)
    added = _pct(results["audit on"], 50) - _pct(results["audit off"], 50)
    console.print(f"audit adds {added:.2f} ms at p50 (target: under 2 ms); "
                  f"mean {statistics.mean(results['audit on']) - statistics.mean(results['audit off']):.2f} ms")


if __name__ == "__main__":
    main()
