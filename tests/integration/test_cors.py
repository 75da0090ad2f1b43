"""CORS: browser apps on the configured origins may call the gateway, no other origin may.

Preflights are answered before authentication, rate limiting and audit; the requests that follow them
go through all of it, and keep the CSRF rules (JSON-only POST, GET for queries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from demo.world import World
from gateway.settings import ConfigError, load_settings
from tests.integration.gateway_harness import Harness, running_gateway

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
PREFLIGHT = {"access-control-request-method": "POST",
             "access-control-request-headers": "authorization,content-type"}


@pytest.fixture(scope="module")
async def cors(world: World, erp_sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[Harness]:
    db = Path(tmp_path_factory.mktemp("cors")) / "gateway.db"
    # One request a minute: a preflight that reached the rate limiter would use up the bucket.
    async with running_gateway(world, erp_sqlite_url, db, cors={"allow_origins": [APP]},
                               limits={"rate_per_second": 1 / 60, "rate_burst": 1}) as harness:
        yield harness


async def _preflight(gw: Harness, origin: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """An OPTIONS request as a browser sends it: no credentials."""
    request = gw.client.build_request("OPTIONS", "/graphql", headers={"origin": origin, **(headers or PREFLIGHT)})
    del request.headers["authorization"]
    return await gw.client.send(request)


def _as(gw: Harness, who: str) -> dict[str, str]:
    """Credentials of a user of their own, so that each test has a full rate-limit bucket."""
    return gw.bearer(gw.jwt("admin", subject=f"{who}@example.com"))


async def _audit_records(gw: Harness) -> int:
    async with gw.app.state.audit.sink.engine.connect() as conn:
        count: int = (await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar_one()
    return count


async def test_a_preflight_from_an_allowed_origin_is_granted_without_credentials(cors: Harness) -> None:
    r = await _preflight(cors, APP)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert set(r.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert allowed >= {"authorization", "content-type", "accept", "idempotency-key", "x-request-id"}
    assert r.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in r.headers  # no cookies: tokens go in a header
    assert "origin" in r.headers["vary"].lower()


async def test_a_preflight_from_another_origin_is_not_granted(cors: Harness) -> None:
    r = await _preflight(cors, OTHER)
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("request_headers", [
    {"access-control-request-method": "PUT"},
    {"access-control-request-method": "POST", "access-control-request-headers": "authorization,x-debug"},
])
async def test_a_preflight_for_other_methods_or_headers_is_not_granted(cors: Harness,
                                                                        request_headers: dict[str, str]) -> None:
    r = await _preflight(cors, APP, request_headers)
    assert r.status_code == 400


async def test_a_request_from_an_allowed_origin_may_read_the_answer_and_its_request_id(cors: Harness) -> None:
    r = await cors.client.post("/graphql", json={"query": "{ warehouses { code } }"},
                               headers={"origin": APP, "x-request-id": "cors-post", **_as(cors, "post")})
    assert r.status_code == 200 and r.json()["data"]["warehouses"]
    assert r.headers["access-control-allow-origin"] == APP
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert exposed >= {"x-request-id", "retry-after", "idempotent-replayed"}
    assert r.headers["x-request-id"] == "cors-post"


async def test_a_request_from_another_origin_gets_no_grant(cors: Harness) -> None:
    """The answer is sent (the browser is the one that refuses it), but nothing in it lets a page read it."""
    r = await cors.client.post("/graphql", json={"query": "{ health { status } }"},
                               headers={"origin": OTHER, **_as(cors, "other")})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


async def test_preflights_are_not_audited_or_rate_limited_but_requests_are(cors: Harness) -> None:
    before = await _audit_records(cors)
    for _ in range(5):  # far more than the bucket holds
        r = await _preflight(cors, APP)
        assert r.status_code == 200
    r = await _preflight(cors, OTHER)
    assert r.status_code == 400
    assert await _audit_records(cors) == before
    user = _as(cors, "limited")
    first = await cors.client.post("/graphql", json={"query": "{ warehouses { code } }"},
                                   headers={"origin": APP, **user})
    second = await cors.client.post("/graphql", json={"query": "{ warehouses { code } }"},
                                    headers={"origin": APP, **user})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["access-control-allow-origin"] == APP and "retry-after" in second.headers
    assert await _audit_records(cors) == before + 2


async def test_csrf_rules_still_hold_for_allowed_origins(cors: Harness) -> None:
    form = await cors.client.post("/graphql", content=b"query={ warehouses { code } }",
                                  headers={"origin": APP, "content-type": "application/x-www-form-urlencoded",
                                           **_as(cors, "form")})
    assert form.status_code == 415
    mutation = await cors.client.get("/graphql", params={"query": "mutation { __typename }"},
                                     headers={"origin": APP, **_as(cors, "get")})
    assert mutation.status_code == 405


async def test_without_origins_cors_is_off(gw: Harness) -> None:
    r = await _preflight(gw, APP)
    assert r.status_code == 405
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(("origins", "message"), [
    ('["*"]', "'*' is not allowed: credentials travel in the Authorization header"),
    ('["https://app.example.com/"]', "is not an origin"),
    ('["https://*.example.com"]', "patterns are not supported"),
    ('["https://App.example.com"]', "lower case"),
])
def test_a_wildcard_or_anything_but_an_exact_origin_stops_the_start(
        origins: str, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no gateway.toml here
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.setenv("GATEWAY_CORS__ALLOW_ORIGINS", origins)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "cors.allow_origins" in str(refused.value) and message in str(refused.value)
