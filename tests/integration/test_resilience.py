"""Resilience with the sample systems' fault knobs: retries counted, the breaker opening and recovering,
Retry-After honoured, writes never retried, deadlines and bulkheads holding for a slow ERP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from demo.erp.faultproxy import FaultProxy
from demo.erp.seed import seed
from demo.world import World
from sources.base import Health
from sources.errors import SourceError, SourceTimeout, SourceUnavailable, UpstreamBadResponse
from sources.resilience import Resilience, ResiliencePolicy
from sources.rest import RestTransport
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway

OFFERS = 'query($s: String!) { product(sku: $s) { name offers { leadTimeDays } } }'


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def strict(world: World, erp_sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, Clock]]:
    clock = Clock()
    policy = {"retries": 2, "backoff_base_s": 0, "breaker_failures": 3, "breaker_open_s": 5}
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", resilience=policy,
                               monotonic=clock) as gw:
        gw.reset_counts()
        yield gw, clock


async def test_partner_500s_retries_then_breaker_then_recovery(strict: tuple[Harness, Clock], world: World) -> None:
    gw, clock = strict
    sku = world.items[0].number
    gw.faults["supplier"].error_rate = 1.0
    first = await gw.query(OFFERS, {"s": sku})
    assert first["data"]["product"]["name"] and first["data"]["product"]["offers"] is None
    assert first["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    assert gw.upstream["supplier"].total == 3  # one call and two retries, then the breaker opens
    second = await gw.query(OFFERS, {"s": sku})
    assert second["errors"][0]["extensions"]["code"] == "CIRCUIT_OPEN"
    assert gw.upstream["supplier"].total == 3  # an open breaker calls nobody
    ready = (await gw.client.get("/readyz")).json()
    assert ready["sources"]["supplier"]["breaker"] == "open" and ready["sources"]["supplier"]["retries"] == 2
    gw.faults["supplier"].error_rate = 0.0
    clock.now += 5  # half-open: one probe goes through, and its success closes the breaker
    third = await gw.query(OFFERS, {"s": sku})
    assert "errors" not in third and third["data"]["product"]["offers"]
    assert (await gw.client.get("/readyz")).json()["sources"]["supplier"]["breaker"] == "closed"


def _flaky_app(statuses: list[int], retry_after: str) -> tuple[Starlette, list[str]]:
    calls: list[str] = []

    async def endpoint(request: Request) -> JSONResponse:
        calls.append(request.method)
        status = statuses.pop(0) if statuses else 200
        headers = {"Retry-After": retry_after} if status in (429, 503) else {}
        return JSONResponse({"ok": status == 200}, status_code=status, headers=headers)

    return Starlette(routes=[Route("/x", endpoint, methods=["GET", "PATCH"])]), calls


async def test_429_retry_after_is_honoured() -> None:
    app, calls = _flaky_app([429], "2")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    resilience = Resilience("crm", ResiliencePolicy(retries=2), timeout_s=5, sleep=sleep)
    transport = RestTransport("crm", "http://crm", timeout_s=5, transport=httpx.ASGITransport(app=app),
                              resilience=resilience)
    assert await transport.get_json("x", "/x") == {"ok": True}
    assert calls == ["GET", "GET"] and slept == [2.0]
    await transport.aclose()


async def test_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    app, calls = _flaky_app([429], "30")
    transport = RestTransport("crm", "http://crm", timeout_s=1, transport=httpx.ASGITransport(app=app),
                              resilience=Resilience("crm", ResiliencePolicy(retries=2), timeout_s=1))
    with pytest.raises(SourceUnavailable):
        await transport.get_json("x", "/x")
    assert calls == ["GET"]
    await transport.aclose()


async def test_writes_are_never_retried() -> None:
    app, calls = _flaky_app([503, 503], "0")
    transport = RestTransport("crm", "http://crm", timeout_s=5, transport=httpx.ASGITransport(app=app),
                              resilience=Resilience("crm", ResiliencePolicy(retries=2), timeout_s=5))
    with pytest.raises(SourceUnavailable):
        await transport.send_json("patch", "PATCH", "/x", {"a": 1})
    assert calls == ["PATCH"]
    await transport.aclose()


@pytest.fixture
async def slow_erp(world: World, postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, FaultProxy]]:
    await seed(postgres_url, world)
    url = make_url(postgres_url)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        async with running_gateway(world, proxied, tmp_path / "g.db", resilience={"retries": 0}) as gw:
            gw.app.state.services.erp.transport.resilience.timeout_s = 0.3
            yield gw, proxy
    finally:
        await proxy.stop()


@pytest.mark.postgres
async def test_slow_erp_costs_its_timeout_and_no_more(slow_erp: tuple[Harness, FaultProxy], world: World) -> None:
    gw, proxy = slow_erp
    c = linked_customer(world, min_orders=1)
    proxy.faults.latency_ms = 1000
    started = time.perf_counter()
    body = await gw.query('query($n: String!) { customer(number: $n) { name creditLimit { amount } } }',
                          {"n": c.erp_number})
    elapsed = time.perf_counter() - started
    assert body["data"]["customer"] is None or body["data"]["customer"]["creditLimit"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"SOURCE_TIMEOUT"}
    assert elapsed < 0.3 + 0.25, elapsed  # the timeout, plus the gateway's own work; far below the 1 s latency


@pytest.mark.postgres
async def test_slow_erp_does_not_delay_crm_only_queries(slow_erp: tuple[Harness, FaultProxy]) -> None:
    gw, proxy = slow_erp
    proxy.faults.latency_ms = 1000
    slow = asyncio.create_task(gw.query('{ customer(number: "100001") { creditLimit { amount } } }'))
    await asyncio.sleep(0.05)  # the ERP query is now in flight and holding its connection
    started = time.perf_counter()
    fast = await gw.query("{ customers(first: 3) { edges { node { name email } } } }")
    elapsed = time.perf_counter() - started
    assert "errors" not in fast and len(fast["data"]["customers"]["edges"]) == 3
    assert elapsed < 0.25, elapsed
    await slow


async def test_the_sample_crm_429_is_waited_out(world: World) -> None:
    """The sample CRM's own rate limit: over it, 429 with Retry-After; the gateway waits and retries."""
    from demo.crm.app import create_app as crm_app
    from sources.crm import CrmSource
    from sources.rest import OAuth2ClientCredentials
    from tests.integration.gateway_harness import CountingTransport

    upstream = CountingTransport(crm_app(world, client_id="gw", client_secret="s3cret", admin_key="a",
                                         rate_per_second=2, burst=1))
    transport = RestTransport("crm", "http://crm", timeout_s=5, transport=upstream,
                              auth=OAuth2ClientCredentials("crm", "/oauth/token", "gw", "s3cret"),
                              resilience=Resilience("crm", ResiliencePolicy(retries=2), timeout_s=5))
    crm = CrmSource(transport)
    ids = [c.crm_id for c in world.customers[:2]]
    await crm.customers(ids[:1])
    started = time.perf_counter()
    found = await crm.customers(ids[1:])  # the bucket is empty: 429, Retry-After 1, then success
    assert list(found) == ids[1:]
    assert time.perf_counter() - started >= 1.0
    assert upstream.paths["/api/v1/customers"] == 3 and transport.resilience.retries == 1
    await transport.aclose()


async def test_readyz_answers_503_json_naming_a_source_whose_breaker_is_open(strict: tuple[Harness, Clock]) -> None:
    gw, _ = strict
    breaker = gw.app.state.services.erp.transport.resilience.breaker
    for _ in range(3):  # the policy's breaker_failures: the ERP's health check now meets an open breaker
        breaker.record(False)
    response = await gw.client.get("/readyz")
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "degraded"
    assert body["sources"]["erp"]["ok"] is False and body["sources"]["erp"]["breaker"] == "open"
    assert body["sources"]["erp"]["code"] == "CIRCUIT_OPEN" and "erp" in body["sources"]["erp"]["detail"]
    assert all(body["sources"][s]["ok"] for s in ("crm", "supplier", "logistics"))


@pytest.mark.parametrize("exc", [SourceTimeout("crm", "slow"), UpstreamBadResponse("crm", "not JSON"),
                                 SourceError("crm", "odd"), TimeoutError(), RuntimeError("bug")],
                         ids=["SourceTimeout", "UpstreamBadResponse", "SourceError", "TimeoutError", "RuntimeError"])
async def test_readyz_answers_503_json_whatever_a_health_check_raises(strict: tuple[Harness, Clock],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      exc: Exception) -> None:
    gw, _ = strict

    async def health() -> Health:
        raise exc

    monkeypatch.setattr(gw.app.state.services.crm, "health", health)
    response = await gw.client.get("/readyz")
    assert response.status_code == 503, response.text
    crm = response.json()["sources"]["crm"]
    assert crm["ok"] is False and crm["breaker"] == "closed" and crm["code"]
    assert response.json()["sources"]["erp"]["ok"] is True
