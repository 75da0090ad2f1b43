"""Writes through the gateway: validated, scoped, and the cache forgets what they changed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
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


class CrmWrites(httpx.AsyncBaseTransport):
    """Stands between the gateway and the sample CRM and keeps the Idempotency-Key of every PATCH."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.keys: list[str | None] = []
        self.replayed: list[bool] = []  # whether the CRM answered each PATCH from its idempotency store

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "PATCH":
            self.keys.append(request.headers.get("idempotency-key"))
            self.replayed.append(response.headers.get("idempotent-replayed") == "true")
        return response


@pytest.fixture
async def writes(world: World, erp_sqlite_url: str, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Harness, CrmWrites]]:
    """A gateway of its own (its CRM's records change) and the keys its CRM writes arrive with.

    The gateway's own replay of retried mutations is off here: these retries must reach the CRM, to show
    the key each write step sends upstream (what a retry after an expired or taken-over key relies on)."""
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db") as gw:
        crm = CrmWrites(gw.upstream["crm"].inner)
        monkeypatch.setattr(gw.upstream["crm"], "inner", crm)
        monkeypatch.setattr(gw.app.state.graphql, "idempotency", None)
        yield gw, crm


def contact_change(world: World, email: str) -> dict[str, object]:
    return {"input": {"customer": gid(linked_customer(world, min_orders=1).erp_number), "email": email}}


async def test_a_retry_with_the_same_idempotency_key_reaches_the_crm_with_the_same_key(
        writes: tuple[Harness, CrmWrites], world: World) -> None:
    gw, crm = writes
    token = gw.jwt("sales")
    for _ in range(2):
        done = await gw.query(UPDATE, contact_change(world, "retry@example.com"), token=token,
                              headers={"idempotency-key": "order-form-7f3a"})
        assert "errors" not in done, done
    assert len(crm.keys) == 2 and crm.keys[0] == crm.keys[1]
    assert crm.keys[0] is not None and len(crm.keys[0]) == 64 and "order-form-7f3a" not in crm.keys[0]


async def test_the_quoted_form_of_the_header_is_the_same_key(writes: tuple[Harness, CrmWrites],
                                                             world: World) -> None:
    gw, crm = writes
    for given in ("k-1", '"k-1"'):
        await gw.query(UPDATE, contact_change(world, "quoted@example.com"), token=gw.jwt("sales"),
                       headers={"idempotency-key": given})
    assert len(crm.keys) == 2 and crm.keys[0] == crm.keys[1]


async def test_two_principals_with_the_same_idempotency_key_reach_the_crm_with_different_keys(
        writes: tuple[Harness, CrmWrites], world: World) -> None:
    gw, crm = writes
    for subject in ("alice@example.com", "alice@example.com", "bob@example.com", "bob@example.com"):
        done = await gw.query(UPDATE, contact_change(world, "shared@example.com"),
                              token=gw.jwt("sales", subject=subject), headers={"idempotency-key": "same-key"})
        assert "errors" not in done, done
    alice, alice_again, bob, bob_again = crm.keys
    assert alice == alice_again and bob == bob_again and alice != bob


@pytest.mark.parametrize("given", ["", "x" * 256, '"unterminated', '"a" "b"'])
async def test_a_malformed_idempotency_key_is_a_400_and_nothing_is_written(
        writes: tuple[Harness, CrmWrites], world: World, given: str) -> None:
    gw, crm = writes
    body = await gw.query(UPDATE, contact_change(world, "never@example.com"), token=gw.jwt("sales"),
                          headers={"idempotency-key": given}, status=400)
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "Idempotency-Key" in body["errors"][0]["message"]
    assert crm.keys == []


async def test_without_the_header_the_request_id_stands_in_scoped_per_principal(
        writes: tuple[Harness, CrmWrites], world: World) -> None:
    gw, crm = writes
    for subject, request_id in (("alice@example.com", "req-1"), ("alice@example.com", "req-2"),
                                ("bob@example.com", "req-1")):
        done = await gw.query(UPDATE, contact_change(world, "plain@example.com"),
                              token=gw.jwt("sales", subject=subject), headers={"x-request-id": request_id})
        assert done["data"]["updateCustomerContact"]["customer"]["email"] == "plain@example.com"
    assert len(set(crm.keys)) == 3 and all(k is not None and len(k) == 64 for k in crm.keys)
    assert not {"req-1", "req-2"} & set(crm.keys)


async def test_a_retried_write_is_applied_once_by_the_crm(writes: tuple[Harness, CrmWrites], world: World) -> None:
    gw, crm = writes
    token = gw.jwt("sales")
    for _ in range(2):
        await gw.query(UPDATE, contact_change(world, "once@example.com"), token=token,
                       headers={"idempotency-key": "once-1"})
    assert crm.replayed == [False, True]
