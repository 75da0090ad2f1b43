"""The benchmark: sample systems with realistic latencies, the gateway with 1 and 2 workers, five scenarios.

`python -m bench.run` (or `python bench/run.py`) starts `bench.stack.Stack`: the ERP seeded into PostgreSQL
(scratch database `gw_bench`) behind the latency proxy (5 ms per statement), the CRM (15 ms), supplier and
logistics (25 ms) as processes. For each worker count it starts the gateway (and a cached one for the hot
scenario) and, for each scenario:

1. sends a warm-up, then a *sequential sample* (`--sample` requests, one at a time, with the standard
   library's http.client, the lightest client at hand) that reads `extensions.upstreamMs` and
   `extensions.upstreamCalls` from each answer;
2. drives the load with `wrk` at each `--concurrency` for `--seconds` (the Debian package `wrk`; without it
   the Python httpx driver below stands in), through a generated Lua script that POSTs pre-made JSON bodies
   round-robin and counts non-2xx answers and answers carrying `"errors"`.

How overhead is computed: every answer of the sequential sample lists its upstream calls with their start and
duration (`extensions.upstreamCalls`). Their critical path is found as trace viewers find it (see
`critical_path_ms`), and overhead = client latency - critical path; the table shows the median of that
("overhead p50"), and in brackets the median of latency - `extensions.upstreamMs` (the wall time with any
call in flight, which lets calls beside the path hide the gateway's gaps on it: a lower bound), measured at
concurrency 1 (wrk cannot pair its latencies with per-request server data, so the overhead is not measured
under load). The same sample gives the upstream calls per request (p50 and max). Both appear only for
internal principals: the partner scenario shows "n/a" unless its answers carry them.

The fifth scenario, `placeOrder` (bench/place_order.py, `--no-place-order` skips it), is a write: it runs
on each live gateway after the reads, at each `--order-concurrency`, with a `sales` token, each request
under its own `Idempotency-Key`, spread over many customers and items, plus a hot-row variant (one customer,
one item) at the highest of those concurrencies. The ERP is prepared for it with SQL before the first gateway
starts, and the orders of each measurement are removed after it. Its load driver reads every answer, so its
overhead is measured at each concurrency; it reports orders/s and the share of sagas not COMPLETED.

It prints a table and writes JSON under bench/results/<UTC timestamp>.json; it exits 1 if any request failed
(transport error, non-2xx status, or a GraphQL `errors` entry), in the load or in the sample, or any order was
refused (`userErrors`) or not completed, or the ERP holds another number of orders than were answered.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

from bench import place_order as orders
from bench.stack import Stack, percentile

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "gateway" / "static" / "examples"
PARTNER_DOCUMENT = ROOT / "docs" / "partner-operations" / "stock-of-my-items.graphql"
WRK = "wrk"
BODIES = 500  # pre-made bodies per scenario whose variables vary
WARM_UP = 20
MARKER = "BENCH_JSON "
console = Console()


@dataclass(frozen=True)
class Scenario:
    name: str
    cached: bool
    headers: dict[str, str]
    bodies: list[str]  # JSON request bodies, sent round-robin


@dataclass
class Load:
    """What one load run measured (wrk or the httpx driver)."""

    requests: int = 0
    seconds: float = 0.0
    socket_errors: int = 0  # connect, read, write and timeouts
    non_2xx: int = 0
    graphql_errors: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx + self.graphql_errors


@dataclass
class Sample:
    """The sequential sample: per-request client latency against the gateway's upstream report."""

    latencies: list[float] = field(default_factory=list)
    paths: list[float | None] = field(default_factory=list)  # critical path of extensions.upstreamCalls
    floors: list[float | None] = field(default_factory=list)  # extensions.upstreamMs, None when absent
    calls: list[int | None] = field(default_factory=list)  # len(extensions.upstreamCalls), None when absent
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        overheads = [lat - p for lat, p in zip(self.latencies, self.paths, strict=True) if p is not None]
        beside = [lat - f for lat, f in zip(self.latencies, self.floors, strict=True) if f is not None]
        paths = [p for p in self.paths if p is not None]
        floors = [f for f in self.floors if f is not None]
        calls = sorted(c for c in self.calls if c is not None)
        return {
            "requests": len(self.latencies), "errors": self.errors,
            "latency_p50_ms": _r(statistics.median(self.latencies)) if self.latencies else None,
            "critical_path_ms_p50": _r(statistics.median(paths)) if paths else None,
            "upstream_ms_p50": _r(statistics.median(floors)) if floors else None,
            "overhead_p50_ms": _r(statistics.median(overheads)) if overheads else None,
            "overhead_beside_inflight_p50_ms": _r(statistics.median(beside)) if beside else None,
            "overhead_samples": len(overheads),
            "upstream_calls_p50": calls[len(calls) // 2] if calls else None,
            "upstream_calls_max": calls[-1] if calls else None,
        }


def critical_path_ms(calls: list[dict[str, Any]]) -> float:
    """The critical path of a request's upstream calls (`startMs`, `ms`), as trace viewers find it.

    From the end, take the call that finished last; then, from its start, the call that finished last
    before that; and so on. A call is taken to wait for the one that finished last before it began
    (the order list's lines for its page, say); time between the calls of the path, and before and after
    it, is the gateway's own. Calls in parallel with the path (a CRM read beside the ERP's) hide none of it.
    """
    spans = [(float(c["startMs"]), float(c["startMs"]) + float(c["ms"])) for c in calls]
    total, until = 0.0, float("inf")
    while True:
        before = [s for s in spans if s[1] <= until]
        if not before:
            return total
        start, end = max(before, key=lambda s: s[1])
        total += end - start
        until = start


def _r(value: float) -> float:
    return round(value, 2)


def _body(payload: dict[str, Any]) -> str:
    return json.dumps(payload)


def customer_360_numbers(rng: random.Random) -> list[str]:
    """The customers the customer 360 scenario asks for (its bodies' order)."""
    return [str(100_001 + rng.randrange(5_000)) for _ in range(BODIES)]


def scenarios(stack: Stack, partner_token: str, document_id: str) -> list[Scenario]:
    """The four read scenarios and their request payloads (the hot one runs on a cached gateway)."""
    rng = random.Random(42)
    numbers = customer_360_numbers(rng)
    internal = {"authorization": f"Bearer {stack.admin_jwt}"}
    customer_360 = (EXAMPLES / "01-customer-360.graphql").read_text()
    order_list = (EXAMPLES / "02-order-list.graphql").read_text()
    world = stack.options.world
    partner = world.items[0].main_vendor
    partner_items = [i.number for i in world.items if i.main_vendor == partner]
    return [
        Scenario("customer 360", False, internal, [
            _body({"query": customer_360, "variables": {"number": number}}) for number in numbers]),
        Scenario("order list (50)", False, internal, [_body({"query": order_list})]),
        Scenario("partner inventory", False, {"authorization": f"Bearer {partner_token}"}, [
            _body({"documentId": document_id, "variables": {"sku": rng.choice(partner_items)}})
            for _ in range(BODIES)]),
        Scenario("hot cached customer 360", True, internal,
                 [_body({"query": customer_360, "variables": {"number": "100001"}})]),
    ]


def _headers(scenario: Scenario) -> dict[str, str]:
    return {"content-type": "application/json", **scenario.headers}


# --- the sequential sample ---------------------------------------------------------------------------------


def sample(url: str, scenario: Scenario, count: int) -> Sample:
    """Warm up, then `count` requests one at a time, reading the gateway's upstream report from each.

    The client is the standard library's: about 0.1 ms a request on this machine against httpx's 0.3 ms,
    which would otherwise count as gateway overhead.
    """
    result = Sample()
    headers = _headers(scenario)
    target = urlsplit(url)
    client = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)

    def post(body: str) -> tuple[int, bytes]:
        client.request("POST", target.path or "/", body=body.encode(), headers=headers)
        response = client.getresponse()
        return response.status, response.read()

    try:
        for i in range(WARM_UP):
            post(scenario.bodies[i % len(scenario.bodies)])
        for i in range(count):
            started = time.perf_counter()
            status, data = post(scenario.bodies[i % len(scenario.bodies)])
            latency = (time.perf_counter() - started) * 1000
            try:
                body = json.loads(data)
            except ValueError:
                body = {"errors": ["not JSON"]}
            if not 200 <= status < 300 or "errors" in body:
                result.errors += 1
                continue
            extensions = body.get("extensions") or {}
            floor = extensions.get("upstreamMs")
            calls = extensions.get("upstreamCalls")
            if "answerCache" in extensions:  # a kept answer: nothing was called
                floor, calls = 0.0, []
            result.latencies.append(latency)
            result.paths.append(critical_path_ms(calls) if calls is not None else None)
            result.floors.append(float(floor) if floor is not None else None)
            result.calls.append(len(calls) if calls is not None else None)
    finally:
        client.close()
    return result


# --- wrk ---------------------------------------------------------------------------------------------------


def _lua_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def wrk_script(scenario: Scenario) -> str:
    """A wrk Lua script: POST the scenario's bodies round-robin per thread, count failed answers, print JSON.

    Each wrk thread has its own Lua state: `setup()` (in the main state) keeps the thread handles, the threads
    count in globals, and `done()` (in the main state again) adds them up with `thread:get()`.
    """
    headers = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in _headers(scenario).items())
    bodies = ",\n".join(_lua_string(b) for b in scenario.bodies)
    return f"""-- generated by bench/run.py for the scenario {scenario.name!r}
wrk.method = "POST"
{headers}
local bodies = {{
{bodies}
}}

local threads = {{}}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   prepared = {{}}
   for i, body in ipairs(bodies) do
      prepared[i] = wrk.format(nil, nil, nil, body)
   end
   -- threads start at different places in the list
   index = (id * 97) % #prepared
   non_2xx = 0
   graphql_errors = 0
end

function request()
   index = index % #prepared + 1
   return prepared[index]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
   elseif body and string.find(body, '"errors"', 1, true) then
      graphql_errors = graphql_errors + 1
   end
end

function done(summary, latency, requests)
   local non2xx, gql = 0, 0
   for _, thread in ipairs(threads) do
      non2xx = non2xx + (thread:get("non_2xx") or 0)
      gql = gql + (thread:get("graphql_errors") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      '{MARKER}{{"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d, '
      .. '"non_2xx": %d, "graphql_errors": %d, '
      .. '"p50_ms": %.3f, "p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}}\\n',
      summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
      non2xx, gql,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(95) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def drive_wrk(url: str, scenario: Scenario, concurrency: int, seconds: float, timeout: float) -> Load:
    with tempfile.NamedTemporaryFile("w", prefix="gw-bench-", suffix=".lua", delete=False) as script:
        script.write(wrk_script(scenario))
    try:
        command = [WRK, "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-d", f"{seconds:g}s",
                   "--timeout", f"{timeout:g}s", "--latency", "-s", script.name, url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout + 60,  # noqa: S603
                              check=False)
    finally:
        os.unlink(script.name)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(lines[-1][len(MARKER):])
    return Load(requests=data["requests"], seconds=data["duration_us"] / 1e6, socket_errors=data["socket_errors"],
                non_2xx=data["non_2xx"], graphql_errors=data["graphql_errors"], p50_ms=data["p50_ms"],
                p90_ms=data["p90_ms"], p95_ms=data["p95_ms"], p99_ms=data["p99_ms"])


# --- the Python driver, when wrk is missing ------------------------------------------------------------------


async def drive_httpx(url: str, scenario: Scenario, concurrency: int, seconds: float,
                      request_timeout: float) -> Load:
    """Closed-loop load from `concurrency` asyncio tasks (the driver itself costs CPU on a small machine)."""
    result = Load()
    latencies: list[float] = []
    headers = _headers(scenario)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        index = n * 97
        while time.perf_counter() < deadline:
            index += 1
            started = time.perf_counter()
            try:
                response = await client.post(url, content=scenario.bodies[index % len(scenario.bodies)],
                                             headers=headers)
            except httpx.TransportError:
                result.socket_errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if not response.is_success:
                result.non_2xx += 1
            elif b'"errors"' in response.content:
                result.graphql_errors += 1

    async with httpx.AsyncClient(limits=limits, timeout=request_timeout) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, n) for n in range(concurrency)))
        result.seconds = time.perf_counter() - started
    result.p50_ms, result.p90_ms = _r(percentile(latencies, 50)), _r(percentile(latencies, 90))
    result.p95_ms, result.p99_ms = _r(percentile(latencies, 95)), _r(percentile(latencies, 99))
    return result


# --- the run ------------------------------------------------------------------------------------------------


def row(scenario: Scenario, workers: int, concurrency: int, load: Load, seq: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": scenario.name, "workers": workers, "concurrency": concurrency,
        "requests": load.requests, "seconds": round(load.seconds, 3),
        "rps": round(load.requests / load.seconds, 1) if load.seconds else 0.0,
        # no percentiles when no answer came back within the run
        **{f"p{p}_ms": _r(getattr(load, f"p{p}_ms")) if load.requests else None for p in (50, 90, 95, 99)},
        "errors": load.errors, "socket_errors": load.socket_errors, "non_2xx": load.non_2xx,
        "graphql_errors": load.graphql_errors,
        # from the sequential sample (concurrency 1) on the same gateway
        "overhead_p50_ms": seq["overhead_p50_ms"],
        "overhead_beside_inflight_p50_ms": seq["overhead_beside_inflight_p50_ms"],
        "upstream_calls_p50": seq["upstream_calls_p50"],
        "upstream_calls_max": seq["upstream_calls_max"], "sample": seq,
    }


def table(results: list[dict[str, Any]], stack: Stack, driver: str) -> Table:
    lat = stack.latencies
    out = Table(title=f"gateway benchmark with {driver} (ERP {lat.erp_ms:g} ms/statement, CRM {lat.crm_ms:g} ms, "
                      f"partners {lat.partners_ms:g} ms)",
                caption="latencies in ms; overhead p50 (latency minus the critical path of the upstream calls; in "
                        "brackets: minus the time with any call in flight) and calls from a sequential sample at "
                        "concurrency 1")
    for column in ("scenario", "workers", "conc.", "req/s", "p50", "p95", "p99", "overhead p50", "calls", "errors"):
        out.add_column(column, justify="left" if column == "scenario" else "right")
    for r in results:
        overhead = ("n/a" if r["overhead_p50_ms"] is None
                    else f"{r['overhead_p50_ms']:.1f} ({r['overhead_beside_inflight_p50_ms']:.1f})")
        calls = ("n/a" if r["upstream_calls_p50"] is None
                 else f"{r['upstream_calls_p50']}-{r['upstream_calls_max']}")
        errors = str(r["errors"]) + (f" (+{r['sample']['errors']} sample)" if r["sample"]["errors"] else "")
        ms = ["-" if r[k] is None else f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")]
        out.add_row(r["scenario"], str(r["workers"]), str(r["concurrency"]), f"{r['rps']:.1f}", *ms, overhead, calls,
                    f"[red]{errors}[/red]" if errors != "0" else errors)
    return out


def order_plan(stack: Stack) -> orders.OrderPlan:
    """The place-order scenario's customers and items: none of the customers a read scenario asks for."""
    return orders.plan(stack.options.world, [*customer_360_numbers(random.Random(42)), "100001"])


def place_orders(stack: Stack, url: str, workers: int, plan: orders.OrderPlan, concurrencies: list[int],
                 seconds: float, timeout: float) -> list[dict[str, Any]]:
    """The place-order scenario on one gateway: a warm-up, then each concurrency, then the hot row."""
    headers = {"content-type": "application/json", "authorization": f"Bearer {stack.jwt('sales')}"}
    spread, hot = plan.bodies(hot=False), plan.bodies(hot=True)
    world = stack.options.world
    warm = orders.warm_up(url, headers, spread)
    warm_placed = asyncio.run(orders.clear_orders(stack.erp_direct_url, world, plan))
    warm_failures = warm.failures + ([] if warm_placed == warm.completed else [
        f"warm-up: the ERP holds {warm_placed} orders for {warm.completed} completed answers"])
    if warm_failures:
        console.print(f"[red]place order warm-up, {workers} worker(s): {len(warm_failures)} failure(s), first: "
                      f"{warm_failures[0]}[/red]")
    runs = [("place order", spread, c) for c in concurrencies]
    if max(concurrencies) > 1:
        runs.append(("place order, hot row", hot, max(concurrencies)))
    rows: list[dict[str, Any]] = []
    for name, bodies, concurrency in runs:
        run = orders.drive(url, headers, bodies, concurrency, seconds, timeout)
        placed = asyncio.run(orders.clear_orders(stack.erp_direct_url, world, plan))
        result = {"scenario": name, "workers": workers,
                  **orders.summary(run, critical_path_ms), "erp_orders_written": placed}
        if placed != result["completed"]:
            result["failures"] += 1
            result["first_failures"].append(
                f"the ERP holds {placed} orders for {result['completed']} completed answers")
        if not rows:
            result["warm_up_failures"] = len(warm_failures)
            result["failures"] += len(warm_failures)
            result["first_failures"] = warm_failures[:3] + result["first_failures"]
        rows.append(result)
        console.print(f"{name}, {workers} worker(s), concurrency {concurrency}: {result['orders_per_s']:.1f} "
                      f"orders/s, p50 {result['p50_ms']} ms, critical path p50 {result['critical_path_ms_p50']} ms, "
                      f"overhead p50 {result['overhead_p50_ms']} ms, calls p50 {result['upstream_ms_p50']}, "
                      f"failures {result['failures']}")
        for failure in result["first_failures"]:
            console.print(f"[red]  {failure}[/red]")
    return rows


def order_table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="placeOrder (ERP transaction, then the CRM's interaction; sales token, one Idempotency-Key "
                      "per request)",
                caption="latencies in ms, every answer read (overhead at each concurrency): overhead = latency - "
                        "critical path of the upstream calls; in brackets its part after the last call; "
                        "not completed = answers whose saga is not COMPLETED")
    for column in ("scenario", "workers", "conc.", "orders/s", "p50", "p95", "p99", "critical path p50",
                   "overhead p50", "calls", "not completed", "failures"):
        out.add_column(column, justify="left" if column == "scenario" else "right")
    for r in rows:
        ms = ["-" if r[k] is None else f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "critical_path_ms_p50")]
        overhead = ("n/a" if r["overhead_p50_ms"] is None
                    else f"{r['overhead_p50_ms']:.1f} ({r['gateway_after_last_call_ms_p50']:.1f})")
        calls = "n/a" if r["upstream_calls_p50"] is None else f"{r['upstream_calls_p50']}-{r['upstream_calls_max']}"
        share = "-" if r["not_completed_share"] is None else f"{r['not_completed_share']:.1%}"
        failures = str(r["failures"])
        out.add_row(r["scenario"], str(r["workers"]), str(r["concurrency"]), f"{r['orders_per_s']:.1f}", *ms,
                    overhead, calls, share, f"[red]{failures}[/red]" if r["failures"] else failures)
    return out


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the stack's processes are stopped too."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="load per scenario and concurrency")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--sample", type=int, default=100, help="sequential requests for overhead and calls")
    parser.add_argument("--timeout", type=float, default=30, help="per-request timeout under load (seconds)")
    parser.add_argument("--driver", choices=("auto", "wrk", "httpx"), default="auto",
                        help="load generator (auto: wrk when installed, else httpx)")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--place-order", action=argparse.BooleanOptionalAction, default=True,
                        help="run the placeOrder scenario (a write: the ERP is prepared for it and cleaned after)")
    parser.add_argument("--order-concurrency", type=int, nargs="+", default=[1, 8],
                        help="concurrencies of the placeOrder scenario (its hot row runs at the highest)")
    args = parser.parse_args()

    driver = args.driver
    if driver == "auto" and shutil.which(WRK) is None:
        driver = "httpx"
        console.print("[yellow]wrk not found: install it with `apt-get install wrk` (the Debian package wrk); "
                      "falling back to the Python httpx driver, which takes CPU from the gateway[/yellow]")
    elif driver != "httpx":
        if shutil.which(WRK) is None:
            sys.exit("wrk not found: install it with `apt-get install wrk` (the Debian package wrk)")
        version = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
        driver = (version.stdout or version.stderr).split(" [")[0].strip() or "wrk"

    stack = Stack(postgres=args.postgres)
    results: list[dict[str, Any]] = []
    order_results: list[dict[str, Any]] = []
    started = datetime.now(UTC)
    with _terminate_as_interrupt(), stack.running():
        plan: list[Scenario] = []
        ordering = order_plan(stack) if args.place_order else None
        if ordering is not None:  # before any gateway reads the ERP
            asyncio.run(orders.prepare(stack.erp_direct_url, stack.options.world, ordering))
        try:
            _measure(stack, args, driver, plan, results, order_results, ordering)
        finally:
            if ordering is not None:
                asyncio.run(orders.restore(stack.erp_direct_url, stack.options.world, ordering))

    console.print(table(results, stack, driver))
    if order_results:
        console.print(order_table(order_results))
    out = ROOT / "bench" / "results" / f"{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "started": started.isoformat(), "driver": driver, "nproc": len(os.sched_getaffinity(0)),
        "seconds": args.seconds, "sample": args.sample, "timeout": args.timeout,
        "latencies": dataclasses.asdict(stack.latencies), "results": results,
        "place_order": order_results,
        "order_plan": None if ordering is None else {
            "customers": len(ordering.customers), "items": len(ordering.items), "warehouse": ordering.warehouse,
            "gateway_database": tomllib.loads(stack.config(cached=False).read_text())["database_url"]},
    }, indent=2))
    console.print(f"written to {out.relative_to(ROOT)}")
    failed = [r for r in results if r["errors"] or r["sample"]["errors"]] + [r for r in order_results if r["failures"]]
    if failed:
        console.print(f"[red]{len(failed)} scenario run(s) had errors[/red]")
        sys.exit(1)


def _measure(stack: Stack, args: argparse.Namespace, driver: str, plan: list[Scenario],
             results: list[dict[str, Any]], order_results: list[dict[str, Any]],
             ordering: orders.OrderPlan | None) -> None:
    """Every scenario on each gateway: the reads, then (on the live one) the place-order scenario."""
    for workers in args.workers:
        for cached in (False, True):
            with stack.gateway(workers=workers, cached=cached) as url:
                if not plan:  # the gateway has created its database by now
                    token = stack.cli("tokens", "create", "--partner", stack.options.world.items[0].main_vendor,
                                      "--scope", "inventory:read", "--scope", "offers:read")
                    plan.extend(scenarios(stack, token, stack.cli("documents", "add", str(PARTNER_DOCUMENT))))
                for scenario in (s for s in plan if s.cached == cached):
                    seq = sample(url, scenario, args.sample).summary()
                    console.print(f"{scenario.name}, {workers} worker(s), sequential sample: {seq}")
                    for concurrency in args.concurrency:
                        if driver == "httpx":
                            load = asyncio.run(drive_httpx(url, scenario, concurrency, args.seconds, args.timeout))
                        else:
                            load = drive_wrk(url, scenario, concurrency, args.seconds, args.timeout)
                        if load.requests < concurrency:
                            console.print(f"[yellow]{scenario.name} at {concurrency}: only {load.requests} "
                                          "answers within the run; use more --seconds[/yellow]")
                        results.append(row(scenario, workers, concurrency, load, seq))
                        console.print(f"  concurrency {concurrency}: {load.requests / (load.seconds or 1):.1f} "
                                      f"req/s, p50 {load.p50_ms:.1f} ms, errors {load.errors}")
                if ordering is not None and not cached:
                    order_results.extend(place_orders(stack, url, workers, ordering, args.order_concurrency,
                                                      args.seconds, args.timeout))


if __name__ == "__main__":
    main()
