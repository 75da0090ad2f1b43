"""The sample systems behave like the documented upstream APIs (docs/sample-systems.md), faults included."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

import demo.crm.app as crm_module
from demo.crm.app import create_app as crm_app
from demo.faults import Faults
from demo.partners.logistics import create_app as logistics_app
from demo.partners.supplier import create_app as supplier_app
from demo.serve import parser, sizes_of
from demo.world import Customer, PurchaseOrder, Shipment, Sizes, World

WORLD = World(seed=7, sizes=Sizes(customers=200, orders=2_000, items=50, purchase_orders=100))
ADMIN = {"x-admin-key": "admin"}
SUPPLIER_KEY = {"x-api-key": "k"}
BASIC = {"authorization": "Basic " + base64.b64encode(b"u:p").decode()}
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "gw", "client_secret": "s3cret"}


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sample")


def new_crm(faults: Faults | None = None, **limits: Any) -> Starlette:
    return crm_app(WORLD, client_id="gw", client_secret="s3cret", admin_key="admin", faults=faults, **limits)


def new_supplier(faults: Faults | None = None) -> Starlette:
    return supplier_app(WORLD, api_key="k", admin_key="admin", faults=faults)


def new_logistics(faults: Faults | None = None) -> Starlette:
    return logistics_app(WORLD, username="u", password="p", admin_key="admin", faults=faults)


async def bearer(c: httpx.AsyncClient) -> dict[str, str]:
    token = (await c.post("/oauth/token", data=CREDENTIALS)).json()["access_token"]
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def crm() -> AsyncIterator[httpx.AsyncClient]:
    async with client(new_crm()) as c:
        c.headers.update(await bearer(c))
        yield c


@pytest.fixture
async def supplier() -> AsyncIterator[httpx.AsyncClient]:
    async with client(new_supplier()) as c:
        c.headers.update(SUPPLIER_KEY)
        yield c


@pytest.fixture
async def logistics() -> AsyncIterator[httpx.AsyncClient]:
    async with client(new_logistics()) as c:
        c.headers.update(BASIC)
        yield c


async def every_page(c: httpx.AsyncClient, path: str, params: dict[str, Any], items: str, cursor: str) -> list[Any]:
    """Follow the cursors of a listing to its end; the records of all pages, in order."""
    seen: list[Any] = []
    after = None
    while True:
        r = await c.get(path, params={**params, **({"cursor": after} if after else {})})
        assert r.status_code == 200, r.text
        seen += r.json()[items]
        after = r.json()[cursor]
        if not after:
            return seen


# What the contract says the records look like, straight from the world.

def crm_customer(c: Customer) -> dict[str, Any]:
    manager = WORLD.account_managers[c.account_manager]
    created = c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": c.crm_id, "erpCustomerNumber": c.crm_erp_number, "name": c.name,
            "contact": {"firstName": c.contact_first, "lastName": c.contact_last}, "email": c.email,
            "phone": c.crm_phone, "segment": c.segment,
            "accountManager": {"id": manager.id, "name": manager.name, "email": manager.email},
            "createdAt": created, "updatedAt": created}


def supplier_po(po: PurchaseOrder) -> dict[str, Any]:
    return {"poNumber": po.id, "supplierCode": po.supplier, "status": po.status,
            "createdOn": po.created.isoformat(), "expectedOn": po.expected.isoformat(), "currency": po.currency,
            "lines": [{"sku": line.item, "qty": line.quantity, "unitPrice": line.unit_price,
                       "receivedQty": line.quantity if po.status == "RECEIVED" else 0} for line in po.lines]}


def logistics_shipment(s: Shipment) -> dict[str, Any]:
    return {"tracking_number": s.tracking_number, "carrier_code": s.carrier, "order_ref": f"SO-{s.order}",
            "status_code": s.status, "eta": int(s.eta.timestamp()),
            "events": [{"ts": int(e.at.timestamp()), "code": e.code, "location": e.location} for e in s.events]}


# CRM: authentication and rate limit

async def test_crm_api_needs_a_valid_bearer_token() -> None:
    async with client(new_crm()) as c:
        for headers in ({}, {"authorization": "Bearer forged"}, BASIC, {"authorization": "Bearer"}):
            r = await c.get("/api/v1/customers", headers=headers)
            assert r.status_code == 401 and r.json() == {"error": "invalid_token"}
            assert r.headers["www-authenticate"].startswith("Bearer")


async def test_crm_token_flow() -> None:
    async with client(new_crm()) as c:
        issued = await c.post("/oauth/token", data=CREDENTIALS)
        assert issued.status_code == 200
        body = issued.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and len(body["access_token"]) >= 32
        again = (await c.post("/oauth/token", data=CREDENTIALS)).json()["access_token"]
        assert again != body["access_token"]
        for token in (body["access_token"], again):
            assert (await c.get("/api/v1/customers", headers={"authorization": f"Bearer {token}"})).status_code == 200


@pytest.mark.parametrize("form", [
    {**CREDENTIALS, "client_secret": "nope"}, {**CREDENTIALS, "client_id": "other"},
    {"grant_type": "client_credentials"}, {**CREDENTIALS, "client_secret": "sécret"},
])
async def test_crm_token_endpoint_refuses_bad_clients(form: dict[str, str]) -> None:
    async with client(new_crm()) as c:
        r = await c.post("/oauth/token", data=form)
        assert r.status_code == 401 and r.json() == {"error": "invalid_client"}


async def test_crm_token_endpoint_refuses_other_grants() -> None:
    async with client(new_crm()) as c:
        for form in ({**CREDENTIALS, "grant_type": "password"}, {}):
            r = await c.post("/oauth/token", data=form)
            assert r.status_code == 400 and r.json() == {"error": "unsupported_grant_type"}


async def test_crm_tokens_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crm_module, "TOKEN_LIFETIME_S", 0)
    async with client(new_crm()) as c:
        assert (await c.get("/api/v1/customers", headers=await bearer(c))).status_code == 401


async def test_crm_rate_limit_answers_429_with_retry_after_per_client() -> None:
    async with client(new_crm(rate_per_second=0.5, burst=2)) as c:
        headers = await bearer(c)
        statuses = [(await c.get("/api/v1/customers", headers=headers)) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[-1].headers["retry-after"] == "2"  # one request's worth at 0.5/s, whole seconds
        # The bucket belongs to the client, not the token: a fresh token does not refill it.
        assert (await c.get("/api/v1/customers", headers=await bearer(c))).status_code == 429


# CRM: reads

async def test_crm_batch_read_returns_world_records(crm: httpx.AsyncClient) -> None:
    odd = [next(c for c in WORLD.customers if c.crm_erp_number is None),
           next(c for c in WORLD.customers if c.crm_phone is None)]
    wanted = [*WORLD.customers[:3], *odd]
    r = await crm.get("/api/v1/customers", params={"ids": ",".join([c.crm_id for c in wanted] + ["unknown"])})
    assert r.status_code == 200
    assert sorted(r.json()["data"], key=lambda c: c["id"]) == sorted(map(crm_customer, wanted),
                                                                    key=lambda c: c["id"])


async def test_crm_batch_read_takes_at_most_100_ids(crm: httpx.AsyncClient) -> None:
    ids = [c.crm_id for c in WORLD.customers]
    assert len((await crm.get("/api/v1/customers", params={"ids": ",".join(ids[:100])})).json()["data"]) == 100
    assert (await crm.get("/api/v1/customers", params={"ids": ",".join(ids[:101])})).status_code == 400


async def test_crm_reads_one_customer(crm: httpx.AsyncClient) -> None:
    c = WORLD.customers[5]
    assert (await crm.get(f"/api/v1/customers/{c.crm_id}")).json() == crm_customer(c)
    missing = await crm.get("/api/v1/customers/no-such-id")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"


async def test_crm_pagination_covers_every_customer_once_by_name(crm: httpx.AsyncClient) -> None:
    seen = await every_page(crm, "/api/v1/customers", {"limit": 37}, "data", "nextCursor")
    assert [c["id"] for c in seen] == [c.crm_id for c in sorted(WORLD.customers, key=lambda c: (c.name, c.crm_id))]


async def test_crm_pagination_with_filters(crm: httpx.AsyncClient) -> None:
    seen = await every_page(crm, "/api/v1/customers", {"limit": 2, "q": "WORKS", "segment": "public_sector"},
                            "data", "nextCursor")
    expected = sorted((c for c in WORLD.customers if "works" in c.name.lower() and c.segment == "public_sector"),
                      key=lambda c: (c.name, c.crm_id))
    assert expected and [c["id"] for c in seen] == [c.crm_id for c in expected]


@pytest.mark.parametrize("params", [
    {"cursor": "!!"}, {"cursor": base64.urlsafe_b64encode(b'{"a": 1}').decode()}, {"cursor": "é"},
    {"limit": "0"}, {"limit": "501"}, {"limit": "²"}, {"limit": "ten"}, {"limit": "9" * 5000},
    {"segment": "galactic"},
])
async def test_crm_listing_refuses_bad_parameters(crm: httpx.AsyncClient, params: dict[str, str]) -> None:
    r = await crm.get("/api/v1/customers", params=params)
    assert r.status_code == 400 and "error" in r.json()


async def test_crm_interactions_page_newest_first(crm: httpx.AsyncClient) -> None:
    c = max(WORLD.customers, key=lambda c: len(WORLD.interactions[c.crm_id]))
    path = f"/api/v1/customers/{c.crm_id}/interactions"
    seen = await every_page(crm, path, {"limit": 3}, "data", "nextCursor")
    expected = WORLD.interactions[c.crm_id]
    assert [i["id"] for i in seen] == [i.id for i in expected]
    assert seen[0] == {"id": expected[0].id, "customerId": c.crm_id, "kind": expected[0].kind,
                       "occurredAt": expected[0].occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "subject": expected[0].subject, "agent": expected[0].agent}
    calls = await every_page(crm, path, {"limit": 2, "kind": "call"}, "data", "nextCursor")
    assert [i["id"] for i in calls] == [i.id for i in expected if i.kind == "call"]
    assert (await crm.get(path, params={"kind": "fax"})).status_code == 400
    assert (await crm.get("/api/v1/customers/no-such-id/interactions")).status_code == 404


async def test_crm_interactions_batch_gives_first_page_per_customer(crm: httpx.AsyncClient) -> None:
    customers = [c for c in WORLD.customers[:10]]
    r = await crm.get("/api/v1/interactions", params={"customerIds": ",".join(c.crm_id for c in customers) + ",nope",
                                                      "limit": 4})
    results = {res["customerId"]: res for res in r.json()["results"]}
    assert set(results) == {c.crm_id for c in customers}
    for c in customers:
        expected = WORLD.interactions[c.crm_id]
        assert [i["id"] for i in results[c.crm_id]["data"]] == [i.id for i in expected[:4]]
        assert (results[c.crm_id]["nextCursor"] is None) == (len(expected) <= 4)
    ids = ",".join(c.crm_id for c in WORLD.customers[:101])
    assert (await crm.get("/api/v1/interactions", params={"customerIds": ids})).status_code == 400


# CRM: writes

@pytest.mark.parametrize("body", [
    {"segment": "galactic"}, {"name": "Renamed"}, {}, {"email": "not an address"}, {"email": None},
    {"phone": "call me"}, {"phone": 3129044625}, [],
])
async def test_crm_patch_refuses_invalid_changes(crm: httpx.AsyncClient, body: Any) -> None:
    r = await crm.patch(f"/api/v1/customers/{WORLD.customers[0].crm_id}", json=body)
    assert r.status_code == 422 and "error" in r.json()


async def test_crm_patch_applies_changes(crm: httpx.AsyncClient) -> None:
    c = WORLD.customers[0]
    assert (await crm.patch(f"/api/v1/customers/{c.crm_id}", content=b"{")).status_code == 400
    assert (await crm.patch("/api/v1/customers/no-such-id", json={"segment": "smb"})).status_code == 404
    changes = {"email": "New.Person@Example.com", "phone": None, "segment": "public_sector"}
    updated = await crm.patch(f"/api/v1/customers/{c.crm_id}", json=changes)
    assert updated.status_code == 200
    assert updated.json() == {**crm_customer(c), **changes, "updatedAt": updated.json()["updatedAt"]}
    assert updated.json()["updatedAt"].endswith("Z")
    assert (await crm.get(f"/api/v1/customers/{c.crm_id}")).json() == updated.json()


async def test_crm_logs_a_new_interaction(crm: httpx.AsyncClient) -> None:
    c = WORLD.customers[1]
    path = f"/api/v1/customers/{c.crm_id}/interactions"
    created = await crm.post(path, json={"kind": "call", "subject": "  Follow-up on quote  "})
    assert created.status_code == 201
    body = created.json()
    assert body["customerId"] == c.crm_id and body["kind"] == "call" and body["subject"] == "Follow-up on quote"
    assert body["agent"] == WORLD.account_managers[c.account_manager].name and body["occurredAt"].endswith("Z")
    listed = await every_page(crm, path, {"limit": 2}, "data", "nextCursor")
    assert body in listed and len(listed) == len(WORLD.interactions[c.crm_id]) + 1
    assert [i["occurredAt"] for i in listed] == sorted((i["occurredAt"] for i in listed), reverse=True)


async def test_crm_writes_honour_the_idempotency_key(crm: httpx.AsyncClient) -> None:
    c = WORLD.customers[2]
    path = f"/api/v1/customers/{c.crm_id}/interactions"
    key = {"idempotency-key": "k-interaction-1"}
    first = await crm.post(path, json={"kind": "call", "subject": "Once"}, headers=key)
    again = await crm.post(path, json={"kind": "call", "subject": "Once"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    listed = await every_page(crm, path, {"limit": 50}, "data", "nextCursor")
    assert len(listed) == len(WORLD.interactions[c.crm_id]) + 1  # applied once
    other = await crm.post(path, json={"kind": "call", "subject": "Another"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]
    patched = await crm.patch(f"/api/v1/customers/{c.crm_id}", json={"segment": "smb"}, headers=key)
    assert patched.status_code == 422  # the same key for another request
    retries = [crm.patch(f"/api/v1/customers/{c.crm_id}", json={"segment": "smb"},
                         headers={"idempotency-key": "k-patch-1"}) for _ in range(5)]
    answers = await asyncio.gather(*retries)
    assert {a.json()["updatedAt"] for a in answers} == {answers[0].json()["updatedAt"]}
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in answers) == 1  # concurrent: applied once


@pytest.mark.parametrize(("body", "status"), [
    (b"{", 400), (b'{"kind": "fax", "subject": "x"}', 422), (b'{"kind": "call"}', 422),
    (b'{"kind": "call", "subject": "   "}', 422), (b'{"kind": "call", "subject": "x", "extra": 1}', 422),
    (b'["call", "x"]', 422),
])
async def test_crm_refuses_invalid_interactions(crm: httpx.AsyncClient, body: bytes, status: int) -> None:
    r = await crm.post(f"/api/v1/customers/{WORLD.customers[1].crm_id}/interactions", content=body)
    assert r.status_code == status and "error" in r.json()
    unknown = await crm.post("/api/v1/customers/no-such-id/interactions", json={"kind": "call", "subject": "x"})
    assert unknown.status_code == 404


async def test_admin_reset_restores_the_crm_data(crm: httpx.AsyncClient) -> None:
    c = WORLD.customers[2]
    await crm.patch(f"/api/v1/customers/{c.crm_id}", json={"segment": "smb" if c.segment != "smb" else "enterprise"})
    await crm.post(f"/api/v1/customers/{c.crm_id}/interactions", json={"kind": "email", "subject": "Hi"})
    assert (await crm.post("/admin/reset", headers=ADMIN)).status_code == 200
    assert (await crm.get(f"/api/v1/customers/{c.crm_id}")).json() == crm_customer(c)  # the token still works
    page = (await crm.get(f"/api/v1/customers/{c.crm_id}/interactions", params={"limit": 500})).json()["data"]
    assert [i["id"] for i in page] == [i.id for i in WORLD.interactions[c.crm_id]]


# Fault knobs and admin routes, the same in all three systems

SYSTEMS: dict[str, tuple[Callable[[Faults | None], Starlette], str, dict[str, str]]] = {
    "crm": (new_crm, "/api/v1/customers", {}),
    "supplier": (new_supplier, f"/v2/offers?sku={WORLD.items[0].number}", SUPPLIER_KEY),
    "logistics": (new_logistics, f"/api/shipments?order_refs=SO-{WORLD.shipments[0].order}", BASIC),
}


async def call_api(system: str, faults: Faults) -> httpx.Response:
    """One authorised API call to a fresh instance of `system` with the given knobs."""
    make, path, headers = SYSTEMS[system]
    async with client(make(faults)) as c:
        if system == "crm":
            clean = faults.knobs()
            faults.update({"outage": False, "error_rate": 0.0, "garbage": False})  # let the token call through
            headers = await bearer(c)
            faults.update(clean)
        return await c.get(path, headers=headers)


@pytest.mark.parametrize("system", SYSTEMS)
async def test_knobs_off_let_calls_through(system: str) -> None:
    r = await call_api(system, Faults())
    assert r.status_code == 200 and r.json()


@pytest.mark.parametrize("system", SYSTEMS)
async def test_outage_answers_503(system: str) -> None:
    r = await call_api(system, Faults(outage=True))
    assert r.status_code == 503 and r.json() == {"error": "service_unavailable"}


@pytest.mark.parametrize("system", SYSTEMS)
async def test_error_rate_one_answers_500(system: str) -> None:
    r = await call_api(system, Faults(error_rate=1.0))
    assert r.status_code == 500 and r.json() == {"error": "internal_error"}


@pytest.mark.parametrize("system", SYSTEMS)
async def test_garbage_answers_200_with_a_body_that_is_not_json(system: str) -> None:
    r = await call_api(system, Faults(garbage=True))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.content)


async def test_latency_delays_every_answer() -> None:
    async with client(new_logistics(Faults(latency_ms=30))) as c:
        started = time.perf_counter()
        await c.get("/healthz")
        assert time.perf_counter() - started >= 0.03


async def test_admin_calls_are_exempt_from_faults() -> None:
    faults = Faults(latency_ms=600_000, outage=True)  # ten minutes: only an exempt call finishes in time
    async with client(new_logistics(faults)) as c:
        stats = await asyncio.wait_for(c.get("/admin/stats", headers=ADMIN), timeout=5)
        assert stats.json() == {"requests": 0}


async def test_error_rate_draws_from_a_seeded_stream() -> None:
    async def statuses() -> list[int]:
        async with client(new_logistics(Faults(error_rate=0.5))) as c:
            return [(await c.get("/healthz")).status_code for _ in range(40)]

    first = await statuses()
    assert first == await statuses() and {200, 500} == set(first)


@pytest.mark.parametrize("system", SYSTEMS)
async def test_admin_routes_need_the_admin_key(system: str) -> None:
    async with client(SYSTEMS[system][0](None)) as c:
        for headers in ({}, {"x-admin-key": "wrong"}, [(b"x-admin-key", "ädmin".encode("latin-1"))]):
            assert (await c.post("/admin/faults", json={"outage": True}, headers=headers)).status_code == 401
            assert (await c.get("/admin/stats", headers=headers)).status_code == 401
            assert (await c.post("/admin/reset", headers=headers)).status_code == 401
        assert (await c.get("/healthz")).status_code == 200  # nothing was switched on


async def test_admin_faults_update_knobs_all_or_nothing() -> None:
    faults = Faults()
    async with client(new_supplier(faults)) as c:
        r = await c.post("/admin/faults", json={"latency_ms": 15, "garbage": True}, headers=ADMIN)
        assert r.json() == {"latency_ms": 15.0, "error_rate": 0.0, "outage": False, "garbage": True}
        for bad in ({"latency": 5}, {"latency_ms": 1, "error_rate": 2}, {"outage": "yes"}, {"latency_ms": -1}, [1]):
            assert (await c.post("/admin/faults", json=bad, headers=ADMIN)).status_code == 400
        assert (await c.post("/admin/faults", content=b"{", headers=ADMIN)).status_code == 400
        assert faults.knobs() == {"latency_ms": 15.0, "error_rate": 0.0, "outage": False, "garbage": True}


async def test_admin_stats_count_api_requests_and_reset_restores_initial_knobs() -> None:
    faults = Faults(latency_ms=1)
    async with client(new_supplier(faults)) as c:
        for _ in range(3):
            await c.get("/v2/offers", params={"sku": WORLD.items[0].number}, headers=SUPPLIER_KEY)
        assert (await c.get("/admin/stats", headers=ADMIN)).json() == {"requests": 3}
        await c.post("/admin/faults", json={"outage": True, "latency_ms": 0}, headers=ADMIN)
        assert (await c.post("/admin/reset", headers=ADMIN)).status_code == 200
        assert faults.knobs() == {"latency_ms": 1.0, "error_rate": 0.0, "outage": False, "garbage": False}
        assert (await c.get("/admin/stats", headers=ADMIN)).json() == {"requests": 0}


def test_knobs_come_from_the_environment() -> None:
    env = {"CRM_LATENCY_MS": "15", "CRM_ERROR_RATE": "0.25", "CRM_OUTAGE": "true", "SUPPLIER_OUTAGE": "1"}
    assert Faults.from_env("crm", env).knobs() == {"latency_ms": 15.0, "error_rate": 0.25, "outage": True,
                                                   "garbage": False}
    assert Faults.from_env("logistics", env).knobs() == Faults().knobs()
    for bad in ({"CRM_LATENCY_MS": "fast"}, {"CRM_ERROR_RATE": "2"}, {"CRM_OUTAGE": "maybe"}):
        with pytest.raises(ValueError, match="CRM"):
            Faults.from_env("crm", bad)


async def test_unknown_routes_answer_json(crm: httpx.AsyncClient) -> None:
    for r in (await crm.get("/api/v1/nothing"), await crm.delete("/api/v1/customers")):
        assert r.status_code in (404, 405) and r.headers["content-type"] == "application/json" and r.json()["error"]


# Supplier portal

async def test_supplier_needs_the_api_key() -> None:
    async with client(new_supplier()) as c:
        for headers in ({}, {"x-api-key": "wrong"}, [(b"x-api-key", "ké".encode("latin-1"))]):
            r = await c.get("/v2/offers", params={"sku": "X"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"]


async def test_supplier_offers_by_sku_equal_world_offers(supplier: httpx.AsyncClient) -> None:
    skus = [i.number for i in WORLD.items[:3]]
    offers = (await supplier.get("/v2/offers", params={"sku": ",".join([*skus, "NOPE"])})).json()["offers"]
    assert offers == [{"supplierCode": o.supplier, "sku": o.item, "unitPrice": o.unit_price, "currency": o.currency,
                       "leadTimeDays": o.lead_time_days, "availableQty": o.available_qty,
                       "validUntil": o.valid_until.isoformat()} for s in skus for o in WORLD.offers if o.item == s]
    assert all(isinstance(o["unitPrice"], str) and "." in o["unitPrice"] for o in offers)
    too_many = ",".join(f"SKU{i}" for i in range(201))
    assert (await supplier.get("/v2/offers", params={"sku": too_many})).status_code == 400


async def test_supplier_offer_pages_cover_a_supplier_once(supplier: httpx.AsyncClient) -> None:
    code = WORLD.offers[0].supplier
    seen = await every_page(supplier, "/v2/offers", {"supplier": code, "limit": 2}, "offers", "next")
    assert sorted(o["sku"] for o in seen) == sorted(o.item for o in WORLD.offers if o.supplier == code)
    assert len(seen) == len({o["sku"] for o in seen})
    assert (await supplier.get("/v2/offers")).status_code == 400


async def test_supplier_purchase_orders_by_id_and_sku(supplier: httpx.AsyncClient) -> None:
    wanted = WORLD.purchase_orders[:4]
    r = await supplier.get("/v2/purchase-orders", params={"ids": ",".join(p.id for p in wanted)})
    assert r.json() == {"purchaseOrders": [supplier_po(p) for p in wanted]}
    sku = WORLD.purchase_orders[0].lines[0].item
    by_sku = (await supplier.get("/v2/purchase-orders", params={"sku": sku})).json()["purchaseOrders"]
    assert {p["poNumber"] for p in by_sku} == {p.id for p in WORLD.purchase_orders
                                                if any(line.item == sku for line in p.lines)}
    too_many = ",".join(f"PO-{i}" for i in range(201))
    assert (await supplier.get("/v2/purchase-orders", params={"ids": too_many})).status_code == 400


async def test_supplier_purchase_order_pages_are_newest_first_and_complete(supplier: httpx.AsyncClient) -> None:
    seen = await every_page(supplier, "/v2/purchase-orders", {"limit": 30}, "purchaseOrders", "next")
    newest_first = sorted(WORLD.purchase_orders, key=lambda p: (p.created, p.id), reverse=True)
    assert [p["poNumber"] for p in seen] == [p.id for p in newest_first]
    code = WORLD.purchase_orders[0].supplier
    received = await every_page(supplier, "/v2/purchase-orders", {"supplier": code, "status": "RECEIVED", "limit": 3},
                                "purchaseOrders", "next")
    assert [p["poNumber"] for p in received] == [p.id for p in newest_first
                                                  if p.supplier == code and p.status == "RECEIVED"]
    assert (await supplier.get("/v2/purchase-orders", params={"status": "LOST"})).status_code == 400
    assert (await supplier.get("/v2/purchase-orders", params={"cursor": "!!"})).status_code == 400


async def test_supplier_confirms_purchase_orders(supplier: httpx.AsyncClient) -> None:
    sent = next(p for p in WORLD.purchase_orders if p.status == "SENT")
    confirmed = await supplier.post(f"/v2/purchase-orders/{sent.id}/confirm")
    assert confirmed.status_code == 200 and confirmed.json() == {**supplier_po(sent), "status": "CONFIRMED"}
    again = await supplier.get("/v2/purchase-orders", params={"ids": sent.id})
    assert again.json()["purchaseOrders"][0]["status"] == "CONFIRMED"
    for status in ("RECEIVED", "CANCELLED"):
        closed = next(p for p in WORLD.purchase_orders if p.status == status)
        r = await supplier.post(f"/v2/purchase-orders/{closed.id}/confirm")
        assert r.status_code == 409 and r.json()["error"]
    assert (await supplier.post("/v2/purchase-orders/PO-0000-000000/confirm")).status_code == 404
    await supplier.post("/admin/reset", headers=ADMIN)
    restored = await supplier.get("/v2/purchase-orders", params={"ids": sent.id})
    assert restored.json()["purchaseOrders"][0]["status"] == "SENT"


async def test_supplier_pages_survive_a_confirmation_in_between(supplier: httpx.AsyncClient) -> None:
    sent = [p.id for p in sorted(WORLD.purchase_orders, key=lambda p: (p.created, p.id), reverse=True)
            if p.status == "SENT"]
    first = (await supplier.get("/v2/purchase-orders", params={"status": "SENT", "limit": 1})).json()
    await supplier.post(f"/v2/purchase-orders/{first['purchaseOrders'][0]['poNumber']}/confirm")
    rest = await every_page(supplier, "/v2/purchase-orders", {"status": "SENT", "limit": 1, "cursor": first["next"]},
                            "purchaseOrders", "next")
    assert [p["poNumber"] for p in first["purchaseOrders"] + rest] == sent


# Logistics provider

async def test_logistics_needs_basic_auth() -> None:
    async with client(new_logistics()) as c:
        for headers in ({}, {"authorization": "Basic " + base64.b64encode(b"u:wrong").decode()},
                        {"authorization": "Basic !!!"}, {"authorization": "Basic " + base64.b64encode(b"u").decode()},
                        {"authorization": "Basic " + base64.b64encode("ü:p".encode()).decode()},
                        {"authorization": "Bearer u:p"}):
            r = await c.get("/api/shipments", params={"order_refs": "SO-1"}, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")


async def test_logistics_shipments_by_order_and_tracking_number(logistics: httpx.AsyncClient) -> None:
    wanted = WORLD.shipments[:3]
    by_order = await logistics.get("/api/shipments", params={"order_refs": ",".join(f"SO-{s.order}" for s in wanted)})
    assert by_order.json() == {"shipments": [logistics_shipment(s) for s in wanted]}
    shipment = by_order.json()["shipments"][0]
    assert isinstance(shipment["eta"], int) and all(isinstance(e["ts"], int) for e in shipment["events"])
    by_tracking = await logistics.get("/api/shipments",
                                      params={"tracking_numbers": f"{wanted[1].tracking_number},NOPE"})
    assert by_tracking.json() == {"shipments": [logistics_shipment(wanted[1])]}
    too_many = ",".join(f"SO-{n}" for n in range(201))
    assert (await logistics.get("/api/shipments", params={"order_refs": too_many})).status_code == 400


async def test_logistics_carrier_pages_by_offset(logistics: httpx.AsyncClient) -> None:
    carrier = WORLD.shipments[0].carrier
    expected = [s.tracking_number for s in WORLD.shipments if s.carrier == carrier]
    seen: list[str] = []
    for offset in range(0, len(expected) + 50, 50):
        body = (await logistics.get("/api/shipments", params={"carrier": carrier, "limit": 50,
                                                              "offset": offset})).json()
        assert body["total"] == len(expected)
        seen += [s["tracking_number"] for s in body["shipments"]]
    assert seen == expected
    for bad in ({"carrier": carrier, "offset": "-1"}, {"carrier": carrier, "limit": "201"}, {}):
        assert (await logistics.get("/api/shipments", params=bad)).status_code == 400


# Command line

def test_every_world_size_is_a_flag() -> None:
    args = parser("test").parse_args(["--port", "1", "--customers", "3", "--purchase-orders", "7", "--carriers", "2"])
    assert sizes_of(args) == Sizes(customers=3, purchase_orders=7, carriers=2)
    with pytest.raises(ValueError, match="carriers"):
        sizes_of(parser("test").parse_args(["--port", "1", "--vendors", "4", "--carriers", "4"]))


@pytest.mark.parametrize("limit", [1, 7, 50, 100, 200])
async def test_supplier_pages_say_next_exactly_when_records_follow(supplier: httpx.AsyncClient, limit: int) -> None:
    """A page is full whenever it has a `next`, and the last page (full or not) has none: no empty pages."""
    seen: list[Any] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        body = (await supplier.get("/v2/purchase-orders", params=params)).json()
        assert body["purchaseOrders"], "an empty page"
        seen += body["purchaseOrders"]
        if body["next"] is None:
            break
        assert len(body["purchaseOrders"]) == limit
        params["cursor"] = body["next"]
    assert len(body["purchaseOrders"]) <= limit
    newest_first = sorted(WORLD.purchase_orders, key=lambda p: (p.created, p.id), reverse=True)
    assert [p["poNumber"] for p in seen] == [p.id for p in newest_first]


async def test_supplier_pages_hold_at_most_200(supplier: httpx.AsyncClient) -> None:
    assert (await supplier.get("/v2/purchase-orders", params={"limit": 200})).status_code == 200
    for bad in ("201", "0", "-1", "x"):
        assert (await supplier.get("/v2/purchase-orders", params={"limit": bad})).status_code == 400
