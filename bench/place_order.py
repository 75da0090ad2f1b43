"""The `placeOrder` scenario: a business write (an ERP transaction, then the CRM's record of it) under load.

`bench/run.py` runs it on each live gateway after the read scenarios (`--no-place-order` skips it). Before
the first gateway starts, `prepare()` readies the bench's PostgreSQL ERP with SQL, on the database itself
(not through the latency proxy): a set of customers that can order (status A, billed in the ERP's
currency, a credit limit no run reaches, no balance) and a set of stock balances in one warehouse with
ample stock on hand. Each order goes to one of those customers and takes 1 to 3 of those items, so that
no single customer's or balance's row lock decides the result; a *hot row* variant sends every order for
one customer and one item, at the highest concurrency only (at concurrency 1 nothing waits for a lock).

The customers are ones the CRM links to (so every order also records a CRM interaction: two upstream
calls) and that no read scenario asks for, so the read scenarios of a later pass do not see the
interactions added here. After each measurement `clear_orders()` removes what it placed (orders above
the seeded range, their lines, the writer's ledger rows, the allocations) and counts them, for
bench/run.py to check one order per completed answer; `restore()` puts the prepared rows back as seeded.

Load comes from threads with the standard library's HTTP client, one connection each, closed loop: every
answer is read, so the overhead (latency minus the critical path of `extensions.upstreamCalls`) is known
at every concurrency, not only at 1 as for the scenarios driven by wrk. At the twenty-odd orders a second
this stack takes, the client's own cost (about 0.1 ms a request) is small.
Every request has its own `Idempotency-Key`. An answer with a transport error, a non-2xx status, a GraphQL
`errors` entry, a `userErrors` entry or a saga not `COMPLETED` is a failure.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from bench.stack import percentile
from demo.erp.schema import CUSMAS, ITMBAL, NUMCTL, ORDDTL, ORDHDR
from demo.erp.seed import ORDER_RANGE, customer_rows
from demo.world import World

ERP_CURRENCY = "USD"  # sources.erp.currency's default, what the bench's gateway runs with
CREDIT_LIMIT_CENTS = 2_000_000_000  # CUSMAS.CMCRLM is a 32-bit integer: about 20 million
ON_HAND = 1_000_000_000  # ITMBAL.IBQOH, likewise
CUSTOMERS = 32
ITEMS = 64
BODIES = 500
WARM_UP = 20
FIRST_SEEDED_ORDER = 5_000_001  # demo.world.World.orders

DOCUMENT = """mutation PlaceOrder($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { number status total { amount currency } }
    userErrors { code field message }
    saga { id state steps { name state } }
  }
}"""


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """Who orders what: customers and items prepared to take orders, in one warehouse."""

    customers: tuple[str, ...]
    items: tuple[str, ...]
    warehouse: str
    next_order: int  # the number the seed left in NUMCTL: orders from it on are the bench's

    def bodies(self, *, hot: bool, seed: int = 42) -> list[str]:
        """Request bodies, sent round-robin: spread over the plan's customers and items, or all on one of each."""
        rng = random.Random(seed)
        out = []
        for n in range(1 if hot else BODIES):
            customer = self.customers[0] if hot else rng.choice(self.customers)
            items = self.items[:1] if hot else rng.sample(self.items, k=rng.randint(1, 3))
            out.append(json.dumps({"query": DOCUMENT, "operationName": "PlaceOrder", "variables": {"input": {
                "customer": customer, "warehouse": self.warehouse, "reference": f"BENCH-{n}",
                "lines": [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in items]}}}))
        return out


def plan(world: World, exclude: Sequence[str], seed: int = 7) -> OrderPlan:
    """Customers linked to a CRM record under their own number and outside `exclude`; items stocked in the
    first warehouse."""
    rng = random.Random(seed)
    skip = set(exclude)
    linked = [c.erp_number for c in world.customers if c.crm_erp_number == c.erp_number and c.erp_number not in skip]
    warehouse = world.warehouses[0][0]
    stocked = sorted({s.item for s in world.stock if s.warehouse == warehouse})
    return OrderPlan(tuple(rng.sample(linked, CUSTOMERS)), tuple(rng.sample(stocked, ITEMS)), warehouse,
                     FIRST_SEEDED_ORDER + world.sizes.orders)


def _customer_key(number: str) -> str:
    return number.rjust(8)  # CUSMAS.CMCUNO as the seed writes it


def _item_key(sku: str) -> str:
    return sku.ljust(15)  # ITMBAL.IBITNO as the seed writes it


async def _clear(conn: Any, order_plan: OrderPlan) -> int:
    """Remove the orders placed above the seeded range and their traces; the number of orders removed."""
    from sources.erp_writes import GWSTEP

    placed = (await conn.execute(select(func.count()).select_from(ORDHDR)
                                 .where(ORDHDR.c.OHORNO >= order_plan.next_order))).scalar_one()
    await conn.execute(delete(ORDDTL).where(ORDDTL.c.ODORNO >= order_plan.next_order))
    await conn.execute(delete(ORDHDR).where(ORDHDR.c.OHORNO >= order_plan.next_order))
    await conn.execute(update(NUMCTL).where(NUMCTL.c.NCKEY == ORDER_RANGE).values(NCNEXT=order_plan.next_order))
    if await conn.run_sync(lambda sync: sync.dialect.has_table(sync, GWSTEP.name)):
        # The writer's ledger of bench orders: only the bench places orders in this scratch database.
        await conn.execute(delete(GWSTEP).where(GWSTEP.c.GSOPER == "place_order"))
    return int(placed)


async def _stock(conn: Any, world: World, order_plan: OrderPlan, *, on_hand: int | None) -> None:
    """The plan's balances as seeded (`on_hand` None), or with `on_hand` and the seeded allocation."""
    items = set(order_plan.items)
    for s in world.stock:
        if s.warehouse == order_plan.warehouse and s.item in items:
            await conn.execute(update(ITMBAL)
                               .where(ITMBAL.c.IBITNO == _item_key(s.item), ITMBAL.c.IBWHSE == s.warehouse)
                               .values(IBQOH=s.on_hand if on_hand is None else on_hand, IBQAL=s.allocated))


async def prepare(url: str, world: World, order_plan: OrderPlan) -> int:
    """Ready the ERP for the plan's orders (and clear what an interrupted run left); orders removed."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            removed = await _clear(conn, order_plan)
            customers = [_customer_key(c) for c in order_plan.customers]
            await conn.execute(update(CUSMAS).where(CUSMAS.c.CMCUNO.in_(customers)).values(
                CMCRLM=CREDIT_LIMIT_CENTS, CMBALD=0, CMSTAT="A", CMCURR=ERP_CURRENCY))
            await _stock(conn, world, order_plan, on_hand=ON_HAND)
    finally:
        await engine.dispose()
    return removed


async def clear_orders(url: str, world: World, order_plan: OrderPlan) -> int:
    """Remove the orders a measurement placed and give back their allocations; how many there were."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            removed = await _clear(conn, order_plan)
            await _stock(conn, world, order_plan, on_hand=ON_HAND)
    finally:
        await engine.dispose()
    return removed


async def restore(url: str, world: World, order_plan: OrderPlan) -> None:
    """The ERP as seeded again: no bench orders, the plan's customers and balances as they were."""
    wanted = {_customer_key(c) for c in order_plan.customers}
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await _clear(conn, order_plan)
            for row in customer_rows(world):
                if row["CMCUNO"] in wanted:
                    await conn.execute(update(CUSMAS).where(CUSMAS.c.CMCUNO == row["CMCUNO"]).values(
                        CMCRLM=row["CMCRLM"], CMBALD=row["CMBALD"], CMSTAT=row["CMSTAT"], CMCURR=row["CMCURR"]))
            await _stock(conn, world, order_plan, on_hand=None)
    finally:
        await engine.dispose()


# --- the load --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's outcome as the client saw it."""

    latency_ms: float
    failure: str | None  # why it does not count as a placed order, or None
    saga_state: str | None
    user_errors: int
    calls: tuple[dict[str, Any], ...] | None  # extensions.upstreamCalls
    upstream_ms: float | None  # extensions.upstreamMs


def judge(status: int, data: bytes, latency_ms: float) -> Answer:
    try:
        body = json.loads(data)
    except ValueError:
        return Answer(latency_ms, f"HTTP {status}, not JSON: {data[:200]!r}", None, 0, None, None)
    extensions = body.get("extensions") or {}
    calls = extensions.get("upstreamCalls")
    upstream = extensions.get("upstreamMs")
    payload = (body.get("data") or {}).get("placeOrder") or {}
    state = (payload.get("saga") or {}).get("state")
    user_errors = payload.get("userErrors") or []
    failure = None
    if not 200 <= status < 300:
        failure = f"HTTP {status}: {data[:300]!r}"
    elif body.get("errors"):
        failure = f"errors: {json.dumps(body['errors'])[:300]}"
    elif user_errors:
        failure = f"userErrors: {json.dumps(user_errors)[:300]}"
    elif state != "COMPLETED":
        failure = f"saga state {state}: {json.dumps(payload.get('saga'))[:300]}"
    return Answer(latency_ms, failure, state, len(user_errors), None if calls is None else tuple(calls),
                  None if upstream is None else float(upstream))


@dataclass
class OrderRun:
    """Every answer of one closed-loop run, and the wall time it took."""

    concurrency: int
    answers: list[Answer] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def completed(self) -> int:
        return sum(1 for a in self.answers if a.failure is None)

    @property
    def failures(self) -> list[str]:
        return self.transport_errors + [a.failure for a in self.answers if a.failure is not None]


def drive(url: str, headers: dict[str, str], bodies: Sequence[str], concurrency: int, seconds: float,
          timeout: float = 60.0) -> OrderRun:
    """`concurrency` clients, each sending the next body as soon as its last answer is in, for `seconds`."""
    target = urlsplit(url)
    run = OrderRun(concurrency)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=timeout)
        index = n * 97
        try:
            while time.perf_counter() < deadline:
                body = bodies[index % len(bodies)].encode()
                index += 1
                started = time.perf_counter()
                try:
                    connection.request("POST", target.path or "/", body=body,
                                       headers={**headers, "idempotency-key": str(uuid.uuid4())})
                    response = connection.getresponse()
                    status, data = response.status, response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        run.transport_errors.append(f"{type(exc).__name__}: {exc}")
                    connection.close()
                    continue
                answer = judge(status, data, (time.perf_counter() - started) * 1000)
                with lock:
                    run.answers.append(answer)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,), name=f"bench-order-{n}") for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    return run


def warm_up(url: str, headers: dict[str, str], bodies: Sequence[str]) -> OrderRun:
    """A few orders one at a time (connections, prepared statements, the CRM's token); not measured."""
    run = OrderRun(1)
    for body in bodies[:WARM_UP]:
        run.answers.extend(drive_one(url, headers, body))
    return run


def drive_one(url: str, headers: dict[str, str], body: str) -> list[Answer]:
    target = urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
    try:
        started = time.perf_counter()
        connection.request("POST", target.path or "/", body=body.encode(),
                           headers={**headers, "idempotency-key": str(uuid.uuid4())})
        response = connection.getresponse()
        return [judge(response.status, response.read(), (time.perf_counter() - started) * 1000)]
    finally:
        connection.close()


# --- the numbers -----------------------------------------------------------------------------------------


def _r(value: float) -> float:
    return round(value, 2)


def _median(values: list[float]) -> float | None:
    return _r(statistics.median(values)) if values else None


def _spans(calls: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    return sorted((float(c["startMs"]), float(c["startMs"]) + float(c["ms"])) for c in calls)


def summary(run: OrderRun, critical_path_ms: Callable[[list[dict[str, Any]]], float]) -> dict[str, Any]:
    """The figures of one run, each request's critical path found by `critical_path_ms` (bench.run's)."""
    answered = [a for a in run.answers if a.calls is not None]
    latencies = [a.latency_ms for a in run.answers]
    paths = [critical_path_ms(list(a.calls)) for a in answered if a.calls is not None]
    overheads = [a.latency_ms - p for a, p in zip(answered, paths, strict=True)]
    beside = [a.latency_ms - a.upstream_ms for a in answered if a.upstream_ms is not None]
    # Where the gateway's own time falls: before the first call, between calls, after the last one (in
    # the gateway's clock from the request's start; the client's share of the HTTP exchange lands in "after").
    head, gaps, tail = [], [], []
    for a in answered:
        spans = _spans(a.calls or ())
        if not spans:
            continue
        head.append(spans[0][0])
        gaps.append(sum(max(0.0, nxt[0] - end) for (_, end), nxt in itertools.pairwise(spans)))
        tail.append(a.latency_ms - max(end for _, end in spans))
    calls = sorted(len(a.calls or ()) for a in answered)
    per_operation = Counter(f"{c['source']}/{c['operation']}" for a in answered for c in a.calls or ())
    timings: dict[str, list[float]] = {}
    for a in answered:
        for c in a.calls or ():
            timings.setdefault(f"{c['source']}/{c['operation']}", []).append(float(c["ms"]))
    completed = run.completed
    return {
        "concurrency": run.concurrency, "requests": len(run.answers) + len(run.transport_errors),
        "seconds": round(run.seconds, 3),
        "rps": round(len(run.answers) / run.seconds, 1) if run.seconds else 0.0,
        "orders_per_s": round(completed / run.seconds, 1) if run.seconds else 0.0,
        **{f"p{p}_ms": _r(percentile(latencies, p)) if latencies else None for p in (50, 90, 95, 99)},
        "critical_path_ms_p50": _median(paths),
        "overhead_p50_ms": _median(overheads),
        "overhead_p90_ms": _r(percentile(overheads, 90)) if overheads else None,
        "overhead_beside_inflight_p50_ms": _median(beside),
        "gateway_before_first_call_ms_p50": _median(head),
        "gateway_between_calls_ms_p50": _median(gaps),
        "gateway_after_last_call_ms_p50": _median(tail),
        "upstream_calls_p50": calls[len(calls) // 2] if calls else None,
        "upstream_calls_max": calls[-1] if calls else None,
        "upstream_calls_per_request": {k: round(v / len(answered), 3) for k, v in sorted(per_operation.items())}
        if answered else {},
        "upstream_ms_p50": {k: _median(v) for k, v in sorted(timings.items())},
        "completed": completed,
        "not_completed": sum(1 for a in run.answers if a.saga_state != "COMPLETED"),
        "not_completed_share": round(sum(1 for a in run.answers if a.saga_state != "COMPLETED") / len(run.answers), 4)
        if run.answers else None,
        "user_errors": sum(1 for a in run.answers if a.user_errors),
        "transport_errors": len(run.transport_errors),
        "failures": len(run.failures),
        "first_failures": run.failures[:3],
    }
