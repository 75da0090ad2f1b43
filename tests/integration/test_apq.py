"""Automatic persisted queries (Apollo's APQ) for staff: a miss asks for the text, the text registers,
the hash alone runs it; bounded, shared through Redis; partners keep trusted documents only."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from demo.secrets import DemoSecrets
from demo.world import World
from gateway.apq import MemoryApqStore, RedisApqStore
from tests.integration.gateway_harness import Harness, running_gateway

GQL = "application/graphql-response+json"
MISS = {"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}
AUDIT = """query($f: AuditEventFilter) { auditEvents(first: 50, filter: $f) { edges { node {
  requestId document outcome httpStatus } } } }"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str, version: Any = 1) -> dict[str, Any]:
    """Apollo's request extension for `text`."""
    return {"persistedQuery": {"version": version, "sha256Hash": sha(text)}}


async def post(gw: Harness, body: dict[str, Any], *, token: str | None = None, accept: str = GQL,
               request_id: str | None = None) -> httpx.Response:
    """POST as the harness's admin, or as `token` ("": without credentials)."""
    credentials = {} if token is None else {"authorization": f"Bearer {token}" if token else ""}
    headers = {"accept": accept, **credentials, **({"x-request-id": request_id} if request_id else {})}
    return await gw.client.post("/graphql", json=body, headers=headers)


async def register(gw: Harness, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an Apollo client sends after a miss: the hash with the text (as the harness's admin)."""
    r = await post(gw, {"query": text, "variables": variables, "extensions": persisted(text)})
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    body: dict[str, Any] = r.json()
    return body


def assert_no_upstream(gw: Harness) -> None:
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())


@pytest.mark.parametrize("accept", [GQL, "application/json"])
async def test_an_unknown_hash_asks_the_client_for_the_text(gw: Harness, accept: str) -> None:
    text = "query ApqNeverSent { warehouses { code } }"
    r = await post(gw, {"extensions": persisted(text)}, accept=accept)
    # 200 whatever the media type, with the message and code Apollo clients match on to resend the text.
    assert r.status_code == 200 and r.json() == MISS
    assert r.headers["cache-control"] == "private, no-cache, must-revalidate"
    assert_no_upstream(gw)


async def test_a_registered_text_runs_by_its_hash_alone(gw: Harness) -> None:
    text = "query ApqWarehouses { warehouses { code name } }"
    first = await register(gw, text)
    assert first["data"]["warehouses"]
    r = await post(gw, {"extensions": persisted(text)}, request_id="apq-by-hash")
    assert r.status_code == 200 and r.json()["data"] == first["data"]
    events = (await gw.query(AUDIT, {"f": None}))["data"]["auditEvents"]["edges"]
    [event] = [e["node"] for e in events if e["node"]["requestId"] == "apq-by-hash"]
    assert (event["document"], event["outcome"]) == ("sha256:" + sha(text), "ok")  # audited by its hash


async def test_a_hash_that_is_not_the_texts_is_refused_and_registers_nothing(gw: Harness) -> None:
    text, other = "query ApqMismatch { warehouses { code } }", "query ApqOther { warehouses { name } }"
    r = await post(gw, {"query": text, "extensions": persisted(other)})
    assert r.status_code == 400
    assert r.json()["errors"][0] == {"message": "provided sha does not match query",
                                     "extensions": {"code": "BAD_REQUEST"}}
    assert (await post(gw, {"extensions": persisted(other)})).json() == MISS
    assert_no_upstream(gw)


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
async def test_only_version_1_of_the_protocol(gw: Harness, version: Any) -> None:
    text = "query ApqVersion { warehouses { code } }"
    r = await post(gw, {"query": text, "extensions": persisted(text, version)})
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == "Unsupported persisted query version"


async def test_get_with_the_hash_in_extensions_runs_queries_only(gw: Harness) -> None:
    text = "query ApqOverGet($first: Int) { products(first: $first) { edges { node { sku } } } }"
    variables = {"first": 2}
    first = await register(gw, text, variables)
    params = {"operationName": "ApqOverGet", "variables": orjson.dumps(variables).decode(),
              "extensions": orjson.dumps(persisted(text)).decode()}
    r = await gw.client.get("/graphql", params=params, headers={"accept": GQL})
    assert r.status_code == 200 and r.json()["data"] == first["data"]
    unknown = {"extensions": orjson.dumps(persisted("query ApqGetMiss { warehouses { code } }")).decode()}
    r = await gw.client.get("/graphql", params=unknown, headers={"accept": GQL})
    assert r.status_code == 200 and r.json() == MISS
    mutation = "mutation ApqMutation { __typename }"
    await register(gw, mutation)
    r = await gw.client.get("/graphql", params={"extensions": orjson.dumps(persisted(mutation)).decode()})
    assert r.status_code == 405 and r.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_stored_texts_are_limited_like_any_query(gw: Harness) -> None:
    text = "query ApqWide { " + " ".join(f"w{i}: warehouses {{ code }}" for i in range(12)) + " }"
    r = await post(gw, {"query": text, "extensions": persisted(text)})
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "ROOT_FIELD_LIMIT"
    r = await post(gw, {"extensions": persisted(text)})
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "ROOT_FIELD_LIMIT"
    assert_no_upstream(gw)


async def test_partners_and_anonymous_callers_cannot_run_texts_registered_by_staff(gw: Harness) -> None:
    """Texts nobody reviewed are for internal principals only: a partner gets the trusted-document answer."""
    text = "query ApqPartnerCodes { partners { code } }"  # a query a partner token could otherwise run
    health = "query ApqHealth { health { status } }"  # the one query anonymous callers may run
    await register(gw, text)
    await register(gw, health)
    gw.reset_counts()
    token = await gw.partner_token("V00001")
    for body in ({"extensions": persisted(text)}, {"query": text, "extensions": persisted(text)}):
        r = await post(gw, body, token=token)
        assert r.status_code == 400 and "data" not in r.json(), r.text
        assert r.json()["errors"][0] == {"message": f"unknown document sha256:{sha(text)}",
                                         "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    r = await post(gw, {"extensions": persisted(health)}, token="")
    assert r.status_code == 400 and "data" not in r.json(), r.text
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert_no_upstream(gw)
    # A partner cannot register a text either; trusted documents still work by the same extension.
    fresh = "query ApqPartnerRegisters { partners { code name } }"
    r = await post(gw, {"query": fresh, "extensions": persisted(fresh)}, token=token)
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert (await post(gw, {"extensions": persisted(fresh)})).json() == MISS
    await gw.trust(text)
    r = await post(gw, {"extensions": persisted(text)}, token=token)
    assert r.status_code == 200 and r.json()["data"]["partners"]


async def test_the_store_keeps_the_most_recently_used(world: World, erp_sqlite_url: str, tmp_path: Path) -> None:
    a, b, c = (f"query ApqBound{n} {{ warehouses {{ code }} }}" for n in "ABC")
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", apq={"max_entries": 2}) as gw:
        await register(gw, a)
        await register(gw, b)
        assert "data" in (await post(gw, {"extensions": persisted(a)})).json()  # a is now the most recent
        await register(gw, c)
        assert (await post(gw, {"extensions": persisted(b)})).json() == MISS
        for kept in (a, c):
            assert "data" in (await post(gw, {"extensions": persisted(kept)})).json()


async def test_apq_can_be_turned_off(world: World, erp_sqlite_url: str, tmp_path: Path) -> None:
    text = "query ApqOff { warehouses { code } }"
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", apq={"enabled": False}) as gw:
        r = await post(gw, {"query": text, "extensions": persisted(text)})
        # As before APQ: only trusted documents have ids (Apollo clients then resend without the hash).
        assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_idle_texts_expire() -> None:
    now = [0.0]
    store = MemoryApqStore(max_entries=10, ttl_s=60, max_text_bytes=1024, clock=lambda: now[0])
    await store.put("sha256:" + sha("{ a }"), "{ a }")
    await store.put("sha256:" + sha("{ b }"), "{ b }")
    now[0] = 50
    assert await store.get("sha256:" + sha("{ a }")) == "{ a }"  # a use keeps it
    now[0] = 100
    assert await store.get("sha256:" + sha("{ b }")) is None
    assert await store.get("sha256:" + sha("{ a }")) == "{ a }"
    await store.put("sha256:" + sha("x" * 2000), "x" * 2000)  # longer than a request may be: not kept
    assert await store.get("sha256:" + sha("x" * 2000)) is None


@pytest.mark.redis
async def test_two_gateways_share_registrations_through_redis(world: World, erp_sqlite_url: str, tmp_path: Path,
                                                              redis_url: str) -> None:
    secrets = DemoSecrets.generate()
    one, other = "query ApqShared { warehouses { code } }", "query ApqSharedBack { warehouses { name } }"
    # One names the Redis of APQ itself, the other only the cache's: both share the same store.
    async with (running_gateway(world, erp_sqlite_url, tmp_path / "a.db", secrets=secrets,
                                apq={"redis_url": redis_url}) as a,
                running_gateway(world, erp_sqlite_url, tmp_path / "b.db", secrets=secrets,
                                cache={"url": redis_url, "answers": False}) as b):
        assert (await post(b, {"extensions": persisted(one)})).json() == MISS
        first = await register(a, one)
        r = await post(b, {"extensions": persisted(one)})
        assert r.status_code == 200 and r.json()["data"] == first["data"]
        back = await register(b, other)
        assert (await post(a, {"extensions": persisted(other)})).json()["data"] == back["data"]


@pytest.mark.redis
async def test_the_redis_store_is_bounded_and_runs_only_what_the_hash_names(redis_url: str) -> None:
    store = RedisApqStore(redis_url, max_entries=2, ttl_s=3600, max_text_bytes=1024)
    try:
        a, b, c = "{ a }", "{ b }", "{ c }"
        await store.put("sha256:" + sha(a), a)
        await store.put("sha256:" + sha(b), b)
        assert await store.get("sha256:" + sha(a)) == a
        await store.put("sha256:" + sha(c), c)
        assert await store.get("sha256:" + sha(b)) is None
        assert [await store.get("sha256:" + sha(t)) for t in (a, c)] == [a, c]
        client = Redis.from_url(redis_url)
        try:
            assert await client.zcard(store.keys[1]) == 2 and await client.hlen(store.keys[0]) == 2
            await client.hset(store.keys[0], "sha256:" + sha(a), "{ planted }")  # written behind our back
        finally:
            await client.aclose()
        assert await store.get("sha256:" + sha(a)) is None
    finally:
        await store.aclose()
