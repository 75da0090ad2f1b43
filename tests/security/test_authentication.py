"""Credentials: every bad one gets the same 401, before any upstream call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from demo.world import World
from tests.integration.gateway_harness import Harness, running_gateway
from tests.tokens import make_jwt

QUERY = '{ customer(number: "100001") { name } }'


async def _status(gw: Harness, authorization: str | None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"authorization": authorization} if authorization is not None else {"authorization": ""}
    r = await gw.client.post("/graphql", json=body or {"query": QUERY}, headers=headers)
    return r.status_code, r.json()


def _bad_jwts(secret: str) -> dict[str, str]:
    return {
        "expired": make_jwt(secret, roles=["admin"], expires_in=-3600),
        "wrong audience": make_jwt(secret, roles=["admin"], audience="someone-else"),
        "wrong issuer": make_jwt(secret, roles=["admin"], issuer="evil"),
        "wrong key": make_jwt("x" * 40, roles=["admin"]),
        "alg none": jwt.encode({"sub": "a", "iss": "gateway", "aud": "gateway", "exp": 9999999999,
                                "roles": ["admin"]}, None, algorithm="none"),
        "no expiry": jwt.encode({"sub": "a", "iss": "gateway", "aud": "gateway", "roles": ["admin"]}, secret,
                                algorithm="HS256"),
    }


@pytest.mark.parametrize("case", ["expired", "wrong audience", "wrong issuer", "wrong key", "alg none", "no expiry"])
async def test_bad_jwts_are_refused_alike(gw: Harness, case: str) -> None:
    status, body = await _status(gw, f"Bearer {_bad_jwts(gw.secrets.jwt_secret)[case]}")
    assert status == 401
    assert body == {"errors": [{"message": "invalid or expired credentials",
                                "extensions": {"code": "UNAUTHENTICATED"}}]}
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())


async def test_revoked_unknown_and_expired_tokens_get_the_same_answer(gw: Harness) -> None:
    token, record = await gw.app.state.tokens.create(name="to-revoke", partner_id="V00001",
                                                     scopes=frozenset({"partners:read"}), expires_at=None)
    trusted = {"documentId": await gw.trust("{ partners { code } }")}
    ok_status, _ = await _status(gw, f"Bearer {token}", trusted)
    assert ok_status == 200
    assert await gw.app.state.tokens.revoke(record.id)
    expired = await gw.partner_token("V00001", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    gw.reset_counts()
    answers = [await _status(gw, f"Bearer {t}", trusted) for t in (token, "gwp_" + "A" * 43, expired)]
    assert [a[0] for a in answers] == [401, 401, 401]
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())
    assert answers[0][1] == answers[1][1] == answers[2][1]


async def test_tokens_are_stored_only_as_hashes(gw: Harness) -> None:
    from sqlalchemy import text

    token = await gw.partner_token("V00002")
    async with gw.app.state.tokens.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_tokens"))).all()
    assert rows and all(token not in str(tuple(r)) for r in rows)


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", "Token abc"])
async def test_malformed_authorization(gw: Harness, authorization: str) -> None:
    status, _ = await _status(gw, authorization)
    assert status == 401


async def test_anonymous_may_only_ask_for_health(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": "{ health { status } }"}, headers={"authorization": ""})
    assert r.status_code == 200 and r.json() == {"data": {"health": {"status": "ok"}}}
    r = await gw.client.post("/graphql", json={"query": QUERY}, headers={"authorization": ""})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert gw.sql == []


async def test_roles_map_to_scopes(gw: Harness) -> None:
    body = await gw.query('{ customer(number: "100001") { name email } }', token=gw.jwt("support"))
    assert body["data"]["customer"]["email"] is None
    body = await gw.query('{ customer(number: "100001") { name email } }', token=gw.jwt("sales"))
    assert body["data"]["customer"]["email"]
    body = await gw.query('{ customer(number: "100001") { name } }', token=gw.jwt("no-such-role"))
    assert body["data"]["customer"] is None


async def test_anonymous_health_can_be_switched_off(world: World, erp_sqlite_url: str, tmp_path: Path) -> None:
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", auth={"allow_anonymous_health": False}) as gw:
        r = await gw.client.post("/graphql", json={"query": "{ health { status } }"}, headers={"authorization": ""})
        assert r.status_code == 401
