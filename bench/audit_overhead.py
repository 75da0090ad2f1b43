"""What the audit trail adds to a request, at concurrency 32, over real HTTP.

Starts two gateways (audit on, audit off) as separate processes on this machine, drives each with the
same load of `{ health { status } }` (no upstream call, so the difference is the audit's group commit),
and reports latency percentiles and the difference. `uv run python bench/audit_overhead.py`. The load
comes from `wrk` when it is installed (it takes far less CPU from the gateway than a Python client;
`--driver httpx` forces the Python one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.stack import free_port, percentile
from demo.run import _wait_for_port

QUERY = {"query": "{ health { status } }"}


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


def _drive_wrk(url: str, concurrency: int, seconds: float, rate: float) -> tuple[int, dict[int, float]]:
    """(requests, {percentile: ms}) from wrk's latency distribution; `rate` > 0 paces the clients."""
    # Random (exponential) pauses: clients that all wait the same time after a group commit answered them
    # together would come back together, and measure the bursts they make rather than the audit.
    pause = (f"delay = function() return -math.log(1 - math.random()) * {1000 * concurrency / rate:.1f} end\n"
             if rate > 0 else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(QUERY))}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n' + pause +
                     'done = function(summary, latency, requests)\n'
                     '  for _, p in ipairs({50, 95, 99}) do\n'
                     '    io.write(string.format("P%d %f\\n", p, latency:percentile(p) / 1000))\n'
                     '  end\n'
                     '  io.write(string.format("N %d\\n", summary.requests))\n'
                     'end\n')
    subprocess.run(["wrk", "-t2", "-c", str(concurrency), "-d", "2s", "-s", script.name, url],  # noqa: S603, S607
                   capture_output=True, check=True)  # warm up
    out = subprocess.run(["wrk", "-t2", "-c", str(concurrency), "-d", f"{seconds:g}s", "-s", script.name, url],  # noqa: S603, S607
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    pcts = {int(m[1]): float(m[2]) for m in re.finditer(r"^P(\d+) ([\d.]+)$", out, re.M)}
    return int(re.search(r"^N (\d+)$", out, re.M)[1]), pcts  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--driver", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--rate", type=float, default=0, help=(
        "wrk only: offer about this many requests/s in all (each client pauses between requests), so "
        "latency is measured below saturation; 0: as fast as the gateway answers"))
    args = parser.parse_args()
    use_wrk = args.driver == "wrk" or (args.driver == "auto" and shutil.which("wrk") is not None)
    results: dict[str, tuple[int, dict[int, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, audit in (("audit off", False), ("audit on", True)):
            port = free_port()
            env = {**os.environ, "GATEWAY_CONFIG": str(_config(folder, audit))}
            process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],  # noqa: S603
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_for_port(port, process)
                url = f"http://127.0.0.1:{port}/graphql"
                if use_wrk:
                    results[name] = _drive_wrk(url, args.concurrency, args.seconds, args.rate)
                else:
                    values = asyncio.run(_drive(url, args.concurrency, args.seconds))
                    results[name] = len(values), {p: percentile(values, p) for p in (50, 95, 99)}
            finally:
                process.terminate()
                process.wait(timeout=10)
    offered = f", about {args.rate:g} req/s offered" if use_wrk and args.rate > 0 else ", closed loop"
    table = Table(title=f"health query, concurrency {args.concurrency}{offered}, {args.seconds:g} s each, real HTTP, "
                        f"load from {'wrk' if use_wrk else 'httpx'}")
    for column in ("", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for name, (count, pcts) in results.items():
        table.add_row(name, str(count), f"{count / args.seconds:.0f}", *(f"{pcts[p]:.2f}" for p in (50, 95, 99)))
    console = Console()
    console.print(table)
    added = results["audit on"][1][50] - results["audit off"][1][50]
    console.print(f"audit adds {added:.2f} ms at p50 (target: under 2 ms)")


if __name__ == "__main__":
    main()
