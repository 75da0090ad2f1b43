"""Writes through the gateway: validated, scoped, and the cache forgets what they changed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from demo.world import World
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway

UPDATE = """mutation($input: UpdateCustomerContactInput!) {
  updateCustomerContact(input: $input) { customer { email phone } } }"""
READ = "query($n: String!) { customer(number: $n) { email phone } }"


def gid(number: str) -> str:
    return base64.b64encode(f"Customer:{number}".encode()).decode()


@pytest.fixture
async def cached(world: World, erp_sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", cache={}) as gw:
        yield gw


async def test_a_write_is_seen_by_the_next_read_despite_the_cache(cached: Harness, world: World) -> None:
    c = linked_customer(world, min_orders=1)
    before = await cached.query(READ, {"n": c.erp_number})
    assert before["data"]["customer"]["email"] == c.email.lower()  # now cached
    done = await cached.query(UPDATE, {"input": {"customer": gid(c.erp_number), "email": " New@Example.COM ",
                                                 "phone": "(312) 555-0199"}}, token=cached.jwt("sales"))
    assert "errors" not in done, done
    assert done["data"]["updateCustomerContact"]["customer"] == {"email": "new@example.com", "phone": "+13125550199"}
    after = await cached.query(READ, {"n": c.erp_number})
    assert after["data"]["customer"] == {"email": "new@example.com", "phone": "+13125550199"}
    assert cached.upstream["crm"].paths["/api/v1/customers"] >= 2  # read again after the write


@pytest.mark.parametrize(("role", "code"), [("support", "FORBIDDEN"), ("all-but:customers:pii", "FORBIDDEN"),
                                            ("all-but:customers:write", "FORBIDDEN")])
async def test_writes_need_their_scopes(gw: Harness, world: World, role: str, code: str) -> None:
    c = linked_customer(world, min_orders=1)
    body = await gw.query(UPDATE, {"input": {"customer": gid(c.erp_number), "email": "x@example.com"}},
                          token=gw.jwt(role))
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == code
    assert gw.upstream["crm"].paths.get("/api/v1/customers/" + c.crm_id, 0) == 0


@pytest.mark.parametrize(("patch", "message"), [({"email": "not-an-address"}, "invalid contact data"),
                                                 ({"phone": "12"}, "not a phone number"),
                                                 ({}, "give `email` or `phone`"),
                                                 ({"email": None}, "cannot be cleared")])
async def test_bad_contact_data_never_reaches_the_crm(gw: Harness, world: World, patch: dict, message: str) -> None:
    c = linked_customer(world, min_orders=1)
    body = await gw.query(UPDATE, {"input": {"customer": gid(c.erp_number), **patch}}, token=gw.jwt("sales"))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and message in body["errors"][0]["message"]
    assert all("PATCH" not in p for p in gw.upstream["crm"].paths)
    assert gw.upstream["crm"].paths.get(f"/api/v1/customers/{c.crm_id}", 0) == 0
