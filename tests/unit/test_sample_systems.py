"""The sample systems behave like the documented upstream APIs, faults included."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from demo.crm.app import create_app as crm_app
from demo.faults import Faults
from demo.partners.logistics import create_app as logistics_app
from demo.partners.supplier import create_app as supplier_app
from demo.world import Sizes, World

WORLD = World(seed=7, sizes=Sizes(customers=200, orders=2_000, items=50, purchase_orders=100))
ADMIN = {"x-admin-key": "admin"}


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sample")  # type: ignore[arg-type]


@pytest.fixture
async def crm() -> AsyncIterator[httpx.AsyncClient]:
    async with client(crm_app(WORLD, client_id="gw", client_secret="s3cret", admin_key="admin")) as c:
        token = (await c.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "gw",
                                                    "client_secret": "s3cret"})).json()["access_token"]
        c.headers["authorization"] = f"Bearer {token}"
        yield c


async def test_crm_token_flow_refuses_bad_clients() -> None:
    async with client(crm_app(WORLD, client_id="gw", client_secret="s3cret", admin_key="admin")) as c:
        assert (await c.get("/api/v1/customers")).status_code == 401
        bad = await c.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "gw",
                                                 "client_secret": "nope"})
        assert bad.status_code == 401 and bad.json() == {"error": "invalid_client"}
        wrong_grant = await c.post("/oauth/token", data={"grant_type": "password"})
        assert wrong_grant.status_code == 400
        forged = await c.get("/api/v1/customers", headers={"authorization": "Bearer forged"})
        assert forged.status_code == 401


async def test_crm_batch_read_returns_world_records(crm: httpx.AsyncClient) -> None:
    wanted = WORLD.customers[:3]
    r = await crm.get("/api/v1/customers", params={"ids": ",".join([c.crm_id for c in wanted] + ["unknown"])})
    got = {c["id"]: c for c in r.json()["data"]}
    assert set(got) == {c.crm_id for c in wanted}
    for c in wanted:
        assert got[c.crm_id]["erpCustomerNumber"] == c.crm_erp_number
        assert got[c.crm_id]["email"] == c.email and got[c.crm_id]["phone"] == c.crm_phone
    too_many = await crm.get("/api/v1/customers", params={"ids": ",".join(str(i) for i in range(101))})
    assert too_many.status_code == 400


async def test_crm_pagination_covers_every_customer_once(crm: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 37, **({"cursor": cursor} if cursor else {})}
        body = (await crm.get("/api/v1/customers", params=params)).json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(c.crm_id for c in WORLD.customers) and len(seen) == len(set(seen))
    assert (await crm.get("/api/v1/customers", params={"cursor": "!!"})).status_code == 400


async def test_crm_interactions_batch_and_pages(crm: httpx.AsyncClient) -> None:
    c = next(c for c in WORLD.customers if len(WORLD.interactions[c.crm_id]) >= 6)
    batch = (await crm.get("/api/v1/interactions", params={"customerIds": c.crm_id, "limit": 4})).json()
    first = batch["results"][0]
    assert [i["id"] for i in first["data"]] == [i.id for i in WORLD.interactions[c.crm_id][:4]]
    rest = (await crm.get(f"/api/v1/customers/{c.crm_id}/interactions",
                          params={"limit": 100, "cursor": first["nextCursor"]})).json()
    assert [i["id"] for i in rest["data"]] == [i.id for i in WORLD.interactions[c.crm_id][4:]]


async def test_crm_writes_validate_and_apply(crm: httpx.AsyncClient) -> None:
    cid = WORLD.customers[0].crm_id
    assert (await crm.patch(f"/api/v1/customers/{cid}", json={"segment": "galactic"})).status_code == 422
    assert (await crm.patch(f"/api/v1/customers/{cid}", content=b"{")).status_code == 400
    assert (await crm.patch("/api/v1/customers/nope", json={"segment": "smb"})).status_code == 404
    updated = await crm.patch(f"/api/v1/customers/{cid}", json={"segment": "smb"})
    assert updated.json()["segment"] == "smb"
    created = await crm.post(f"/api/v1/customers/{cid}/interactions", json={"kind": "call", "subject": "Hello"})
    assert created.status_code == 201
    latest = (await crm.get(f"/api/v1/customers/{cid}/interactions", params={"limit": 1})).json()["data"][0]
    assert latest["id"] == created.json()["id"]


async def test_crm_rate_limit_answers_429_with_retry_after() -> None:
    app = crm_app(WORLD, client_id="gw", client_secret="s", admin_key="admin", rate_per_second=1, burst=2)
    async with client(app) as c:
        token = (await c.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "gw",
                                                    "client_secret": "s"})).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        statuses = [(await c.get("/api/v1/customers", headers=headers)) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert int(statuses[-1].headers["retry-after"]) >= 1


async def test_fault_knobs() -> None:
    faults = Faults()
    async with client(supplier_app(WORLD, api_key="k", admin_key="admin", faults=faults)) as c:
        key = {"x-api-key": "k"}
        sku = WORLD.items[0].number
        assert (await c.post("/admin/faults", json={"outage": True})).status_code == 401  # admin key required
        assert (await c.post("/admin/faults", json={"outage": True}, headers=ADMIN)).status_code == 200
        assert (await c.get("/v2/offers", params={"sku": sku}, headers=key)).status_code == 503
        await c.post("/admin/faults", json={"outage": False, "error_rate": 1.0}, headers=ADMIN)
        assert (await c.get("/v2/offers", params={"sku": sku}, headers=key)).status_code == 500
        await c.post("/admin/faults", json={"error_rate": 0, "garbage": True}, headers=ADMIN)
        garbage = await c.get("/v2/offers", params={"sku": sku}, headers=key)
        assert garbage.status_code == 200
        with pytest.raises(ValueError):
            garbage.json()
        assert (await c.post("/admin/faults", json={"latency": 5}, headers=ADMIN)).status_code == 400
        await c.post("/admin/reset", headers=ADMIN)
        stats = (await c.get("/admin/stats", headers=ADMIN)).json()
        assert stats == {"requests": 0, "latency_ms": 0.0, "error_rate": 0.0, "outage": False, "garbage": False}
        assert (await c.get("/v2/offers", params={"sku": sku}, headers=key)).status_code == 200


async def test_latency_knob_delays_answers() -> None:
    import time

    faults = Faults(latency_ms=40)
    async with client(logistics_app(WORLD, username="u", password="p", admin_key="admin", faults=faults)) as c:
        started = time.perf_counter()
        await c.get("/healthz")
        assert time.perf_counter() - started >= 0.04


async def test_supplier_offers_and_purchase_orders() -> None:
    async with client(supplier_app(WORLD, api_key="k", admin_key="admin")) as c:
        assert (await c.get("/v2/offers", params={"sku": "X"})).status_code == 401
        key = {"x-api-key": "k"}
        sku = WORLD.items[1].number
        offers = (await c.get("/v2/offers", params={"sku": sku}, headers=key)).json()["offers"]
        assert {(o["supplierCode"], o["unitPrice"]) for o in offers} == {
            (o.supplier, o.unit_price) for o in WORLD.offers if o.item == sku}
        po = next(p for p in WORLD.purchase_orders if p.status == "SENT")
        confirmed = await c.post(f"/v2/purchase-orders/{po.id}/confirm", headers=key)
        assert confirmed.json()["status"] == "CONFIRMED"
        done = next(p for p in WORLD.purchase_orders if p.status == "RECEIVED")
        assert (await c.post(f"/v2/purchase-orders/{done.id}/confirm", headers=key)).status_code == 409
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 30, **({"cursor": cursor} if cursor else {})}
            body = (await c.get("/v2/purchase-orders", params=params, headers=key)).json()
            seen += [p["poNumber"] for p in body["purchaseOrders"]]
            cursor = body["next"]
            if not cursor:
                break
        assert sorted(seen) == sorted(p.id for p in WORLD.purchase_orders)


async def test_logistics_basic_auth_and_shapes() -> None:
    async with client(logistics_app(WORLD, username="u", password="p", admin_key="admin")) as c:
        denied = await c.get("/api/shipments", params={"order_refs": "SO-1"})
        assert denied.status_code == 401 and "Basic" in denied.headers["www-authenticate"]
        auth = {"authorization": "Basic " + base64.b64encode(b"u:p").decode()}
        s = WORLD.shipments[0]
        body = (await c.get("/api/shipments", params={"order_refs": f"SO-{s.order}"}, headers=auth)).json()
        got = body["shipments"][0]
        assert got["tracking_number"] == s.tracking_number and got["eta"] == int(s.eta.timestamp())
        assert [e["code"] for e in got["events"]] == [e.code for e in s.events]
        too_many = await c.get("/api/shipments", params={"order_refs": ",".join(["SO-1"] * 201)}, headers=auth)
        assert too_many.status_code == 400
