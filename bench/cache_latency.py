"""Customer 360 over real HTTP against a running gateway: cold cache vs hot cache.

Start the demo first (`make demo`), then `uv run python bench/cache_latency.py`. It picks customers the
cache has not seen, asks for each once (cold: every source is called), then again (hot: the cache
answers; only the CRM interactions, which are never cached by default, go upstream), and reports the
latency percentiles of both rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.stack import percentile
from demo.run import demo_jwt
from demo.secrets import load_or_create

QUERY = (Path(__file__).parents[1] / "gateway" / "static" / "examples" / "01-customer-360.graphql").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--first", type=int, default=100_001 + 3_000, help="first customer number to use")
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    args = parser.parse_args()
    token = demo_jwt(load_or_create(args.data_dir))
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    rounds: dict[str, list[float]] = {"cold": [], "hot": []}
    with httpx.Client(headers=headers, timeout=30) as client:
        for name in ("cold", "hot"):
            for number in range(args.first, args.first + args.customers):
                started = time.perf_counter()
                r = client.post(args.url, json={"query": QUERY, "variables": {"number": str(number)}})
                rounds[name].append((time.perf_counter() - started) * 1000)
                body = r.json()
                if r.status_code != 200 or "errors" in body:
                    raise SystemExit(f"customer {number}: {r.status_code} {body}")
    table = Table(title=f"customer 360, {args.customers} customers, sequential, real HTTP")
    for column in ("cache", "p50 ms", "p95 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="right")
    for name, values in rounds.items():
        table.add_row(name, *(f"{percentile(values, p):.1f}" for p in (50, 95, 99)), f"{statistics.mean(values):.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
