"""Incremental delivery: `@defer` and `@stream` answers arrive in parts, the slow source's part last.

The sample CRM's interactions endpoint is made slow (or broken) on its own, so a customer's name (also
from the CRM) and everything from the ERP are in the first part while the interactions wait. The parts
are read as they arrive, through a transport that hands over each chunk the gateway sends (httpx's own
ASGI transport waits for the whole body).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from demo.world import World
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_customer_360 import CUSTOMER_360, global_id
from tests.security.test_partner_rows import supplier_of

MULTIPART = "multipart/mixed;deferSpec=20220824,application/json"  # what Apollo Client sends for @defer
INTERACTIONS = "/api/v1/interactions"

DEFERRED_360 = CUSTOMER_360.replace(
    "interactions(first: 5) { edges { node { kind at summary } } }",
    '... @defer(label: "interactions") { interactions(first: 5) { edges { node { kind at summary } } } }')


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Runs the app per request and hands each body chunk to the client as soon as the app sends it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
                 "scheme": request.url.scheme, "path": request.url.path, "raw_path": request.url.raw_path,
                 "query_string": request.url.query, "root_path": "",
                 "headers": [(k.lower(), v) for k, v in request.headers.raw],
                 "server": (request.url.host, request.url.port or 80), "client": ("127.0.0.1", 40000)}
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        start: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        gone = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.set_result(message)
            elif message["type"] == "http.response.body":
                await chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    await chunks.put(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                await chunks.put(None)

        task = asyncio.ensure_future(run())
        started = await start

        class Body(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                while (chunk := await chunks.get()) is not None:
                    yield chunk

            async def aclose(self) -> None:
                gone.set()  # the client hangs up: the app sees a disconnect
                await asyncio.wait([task], timeout=5)

        return httpx.Response(started["status"], headers=started["headers"], stream=Body())


@dataclass
class Part:
    at_ms: float  # since the request was sent
    body: dict[str, Any]


@pytest.fixture
def client(gw: Harness) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(gw.app), base_url="http://gateway.test",
                             headers=gw.client.headers)


@contextmanager
def crm_interactions(gw: Harness, *, delay_s: float = 0.0, status: int | None = None) -> Iterator[None]:
    """Only the CRM's interactions endpoint is slow (or fails): the rest of the CRM answers at once."""
    counting = gw.upstream["crm"]
    inner = counting.inner

    class Faulty(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == INTERACTIONS:
                await asyncio.sleep(delay_s)
                if status is not None:
                    return httpx.Response(status, json={"error": "service_unavailable"})
            return await inner.handle_async_request(request)

    counting.inner = Faulty()  # type: ignore[assignment]
    try:
        yield
    finally:
        counting.inner = inner


async def read_parts(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, *,
                     accept: str = MULTIPART, body: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[Part]]:
    """POST and read the answer part by part, noting when each part was whole (its closing delimiter seen)."""
    sent = time.perf_counter()
    parts: list[Part] = []
    payload = body if body is not None else {"query": query, "variables": variables}
    async with client.stream("POST", "/graphql", json=payload, headers={"accept": accept, **(headers or {})}) as r:
        buffer = b""
        async for chunk in r.aiter_raw():
            buffer += chunk
            now = (time.perf_counter() - sent) * 1000
            if r.headers["content-type"].startswith("multipart/mixed"):
                *whole, buffer = buffer.split(b"\r\n---")
                for raw in whole:
                    if raw:  # the empty preamble before the first delimiter
                        head, _, json = raw.partition(b"\r\n\r\n")
                        assert head.lower().strip() == b"content-type: application/json; charset=utf-8", head
                        parts.append(Part(now, orjson.loads(json)))
            elif r.headers["content-type"].startswith("text/event-stream"):
                *whole, buffer = buffer.split(b"\n\n")
                for event in whole:
                    name, _, data = event.partition(b"\n")
                    if name == b"event: next":
                        assert data.startswith(b"data: ")
                        parts.append(Part(now, orjson.loads(data[len(b"data: "):])))
                    else:
                        assert (name, data) == (b"event: complete", b"data:"), event
                        parts.append(Part(now, {"complete": True}))
        if r.headers["content-type"].startswith("multipart/mixed"):
            assert buffer == b"--\r\n", buffer  # the closing delimiter
        else:
            assert buffer == b""
    return r, parts


def merged(parts: list[Part]) -> dict[str, Any]:
    """The answer the parts make together, the way a client puts them together."""
    answer: dict[str, Any] = {"data": parts[0].body["data"]}
    for part in parts[1:]:
        for patch in part.body.get("incremental", ()):
            path = patch["path"][:-1] if "items" in patch else patch["path"]
            target: Any = answer["data"]
            for key in path:
                target = target[key]
            if "items" in patch:  # the path ends with the index of the first item
                assert len(target) == patch["path"][-1]
                target.extend(patch["items"])
            else:
                _deep_merge(target, patch["data"])
    return answer


def _deep_merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


async def test_deferred_interactions_arrive_after_the_rest_of_customer_360(gw: Harness, world: World,
                                                                          client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=11, min_interactions=5)
    variables = {"id": global_id("Customer", c.erp_number)}
    whole = await gw.query(CUSTOMER_360, variables)  # also warms the schema's plans
    with crm_interactions(gw, delay_s=0.3):
        r, parts = await read_parts(client, DEFERRED_360, variables)
    assert r.status_code == 200
    assert r.headers["content-type"] == 'multipart/mixed; boundary="-"; deferSpec=20220824'
    first, deferred = parts
    assert first.body["hasNext"] is True and "errors" not in first.body
    customer = first.body["data"]["customer"]
    assert customer["name"] == c.name and "interactions" not in customer  # the CRM's customer record did not wait
    assert customer["orders"] == whole["data"]["customer"]["orders"]

    assert deferred.body["hasNext"] is False and "errors" not in deferred.body
    [patch] = deferred.body["incremental"]
    assert patch["path"] == ["customer"] and patch["label"] == "interactions" and "errors" not in patch
    got = [e["node"] for e in patch["data"]["interactions"]["edges"]]
    assert [(i["kind"], datetime.fromisoformat(i["at"]), i["summary"]) for i in got] == [
        (i.kind.upper(), i.occurred_at, i.subject) for i in world.interactions[c.crm_id][:5]]
    assert merged(parts) == {"data": whole["data"]}

    # The first part did not wait for the slow call; the deferred one did.
    print(f"first part {first.at_ms:.1f} ms, deferred part {deferred.at_ms:.1f} ms")
    assert first.at_ms < 100 and deferred.at_ms >= 300


async def test_the_same_parts_as_server_sent_events(gw: Harness, world: World, client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=11, min_interactions=5)
    variables = {"id": global_id("Customer", c.erp_number)}
    whole = await gw.query(CUSTOMER_360, variables)
    with crm_interactions(gw, delay_s=0.3):
        r, parts = await read_parts(client, DEFERRED_360, variables, accept="text/event-stream")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    first, deferred, complete = parts
    assert complete.body == {"complete": True}
    assert first.body["hasNext"] is True and "interactions" not in first.body["data"]["customer"]
    assert deferred.body["hasNext"] is False and deferred.body["incremental"][0]["path"] == ["customer"]
    assert merged(parts[:2]) == {"data": whole["data"]}
    print(f"SSE: first part {first.at_ms:.1f} ms, deferred part {deferred.at_ms:.1f} ms")
    assert first.at_ms < 100 and deferred.at_ms >= 300


async def test_deferring_costs_no_upstream_call_more(gw: Harness, world: World, client: httpx.AsyncClient) -> None:
    """The deferred interactions are read by the same batch call the look-ahead starts with the customer."""
    c = linked_customer(world, min_orders=11, min_interactions=5)
    variables = {"id": global_id("Customer", c.erp_number)}
    await gw.query(CUSTOMER_360, variables)
    gw.reset_counts()
    whole = await gw.query(CUSTOMER_360, variables)
    plain = (len(gw.sql), dict(gw.upstream["crm"].paths))
    gw.reset_counts()
    _, parts = await read_parts(client, DEFERRED_360, variables)
    assert (len(gw.sql), dict(gw.upstream["crm"].paths)) == plain
    assert plain == (6, {"/api/v1/customers": 1, INTERACTIONS: 1})
    # The last part lists every call of the request, the deferred part's included.
    calls = parts[-1].body["extensions"]["upstreamCalls"]
    assert sorted((x["source"], x["operation"]) for x in calls) == sorted(
        (x["source"], x["operation"]) for x in whole["extensions"]["upstreamCalls"])


async def test_a_failing_source_fails_only_its_deferred_part(gw: Harness, world: World,
                                                             client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=11, min_interactions=5)
    with crm_interactions(gw, status=503):
        _, parts = await read_parts(client, DEFERRED_360, {"id": global_id("Customer", c.erp_number)})
    first, deferred = parts
    assert "errors" not in first.body and first.body["data"]["customer"]["name"] == c.name
    [patch] = deferred.body["incremental"]
    assert patch["path"] == ["customer"] and patch["data"] == {"interactions": None}
    [error] = patch["errors"]
    assert error["path"] == ["customer", "interactions"]
    assert error["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": "crm"}
    assert deferred.body["hasNext"] is False and "errors" not in deferred.body


ORDER_LINES = """query($id: ID!) { customer(id: $id) { orders(first: 3) { edges { node { number
  lines @stream(initialCount: 1) { quantity product { sku name stock { warehouse { code } available } } } } } } } }"""


async def test_streamed_order_lines_follow_the_first_of_each_order(gw: Harness, world: World,
                                                                   client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=11)
    variables = {"id": global_id("Customer", c.erp_number)}
    whole = await gw.query(ORDER_LINES.replace(" @stream(initialCount: 1)", ""), variables)
    _, parts = await read_parts(client, ORDER_LINES, variables)
    first = parts[0].body
    orders = whole["data"]["customer"]["orders"]["edges"]
    assert [len(e["node"]["lines"]) for e in first["data"]["customer"]["orders"]["edges"]] == [1] * len(orders)
    patches = [p for part in parts[1:] for p in part.body.get("incremental", ())]
    assert sorted(tuple(p["path"]) for p in patches) == sorted(
        ("customer", "orders", "edges", i, "node", "lines", 1) for i, e in enumerate(orders)
        if len(e["node"]["lines"]) > 1)
    assert parts[-1].body["hasNext"] is False
    assert merged(parts) == {"data": whole["data"]}


async def test_a_client_that_reads_only_json_is_refused_before_anything_runs(gw: Harness, world: World) -> None:
    """As Apollo Router answers: 406, and no upstream call (a JSON client cannot read the parts)."""
    c = linked_customer(world, min_orders=1)
    variables = {"id": global_id("Customer", c.erp_number)}
    for accept in ("application/json", "application/graphql-response+json", "*/*",
                   "multipart/mixed;incrementalSpec=v0.2, application/json"):
        gw.reset_counts()
        r = await gw.client.post("/graphql", json={"query": DEFERRED_360, "variables": variables},
                                 headers={"accept": accept})
        assert r.status_code == 406, (accept, r.text)
        assert r.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
        assert "multipart/mixed" in r.json()["errors"][0]["message"]
        assert gw.upstream["crm"].total == 0 and gw.sql == []
    # Switched off, @defer changes nothing: one JSON answer.
    off = DEFERRED_360.replace('@defer(label: "interactions")', "@defer(if: $later)").replace(
        "query C360($id: ID!)", "query C360($id: ID!, $later: Boolean!)")
    body = await gw.query(off, {**variables, "later": False})
    assert body["data"] == (await gw.query(CUSTOMER_360, variables))["data"]


async def test_an_answer_in_one_piece_to_a_client_that_reads_only_streams(gw: Harness, world: World,
                                                                          client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=1)
    variables = {"id": global_id("Customer", c.erp_number)}
    whole = await gw.query(CUSTOMER_360, variables)
    for accept in ("multipart/mixed", "text/event-stream"):
        r, parts = await read_parts(client, CUSTOMER_360, variables, accept=accept)
        assert r.status_code == 200
        assert parts[0].body["hasNext"] is False and parts[0].body["data"] == whole["data"]


async def test_deferred_fields_keep_their_scopes(gw: Harness, world: World, client: httpx.AsyncClient) -> None:
    """A deferred field outside the principal's scopes is null with FORBIDDEN in its own part."""
    c = linked_customer(world, min_orders=1)
    query = "query($id: ID!) { customer(id: $id) { name ... @defer { email } } }"
    client.headers["authorization"] = f"Bearer {gw.jwt('only:customers:read')}"
    _, parts = await read_parts(client, query, {"id": global_id("Customer", c.erp_number)})
    first, deferred = parts
    assert first.body["data"] == {"customer": {"name": c.name}}
    [patch] = deferred.body["incremental"]
    assert patch["data"] == {"email": None} and patch["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert patch["errors"][0]["path"] == ["customer", "email"]


async def test_limits_apply_to_deferred_fragments(gw: Harness, client: httpx.AsyncClient) -> None:
    deep = "{ customer(number: \"1\") { ... @defer { " + "orders(first: 1) { edges { node { customer { " * 8 + \
           "name" + " } } } }" * 8 + " } } }"
    r = await client.post("/graphql", json={"query": deep}, headers={"accept": MULTIPART})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["errors"][0]["extensions"]["code"] == "DEPTH_LIMIT"
    costly = ("{ customers(first: 100) { edges { node { ... @defer { orders(first: 100) { edges { node { "
              "lines { quantity } } } } } } } } }")
    r = await client.post("/graphql", json={"query": costly}, headers={"accept": "multipart/mixed"})
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT"
    assert gw.upstream["crm"].total == 0 and gw.sql == []


async def test_partners_may_defer_in_trusted_documents(gw: Harness, world: World, client: httpx.AsyncClient) -> None:
    supplier = supplier_of(world)
    item = next(o.item for o in world.offers
                if o.supplier == supplier and any(x.item == o.item and x.supplier != supplier for x in world.offers))
    query = "query($s: String!) { product(sku: $s) { sku ... @defer { offers { partner { code } } } } }"
    token = await gw.partner_token(supplier)
    _, parts = await read_parts(client, "", body={"documentId": await gw.trust(query), "variables": {"s": item}},
                                headers={"authorization": f"Bearer {token}"})
    first, deferred = parts
    assert first.body["data"] == {"product": {"sku": item}}
    [patch] = deferred.body["incremental"]
    assert patch["data"] == {"offers": [{"partner": {"code": supplier}}]}  # the row rule holds in the part
    # A text nobody registered is still refused to partners, deferred or not.
    r = await client.post("/graphql", json={"query": query.replace("sku", "sku name"), "variables": {"s": item}},
                          headers={"accept": MULTIPART, "authorization": f"Bearer {token}"})
    assert r.status_code == 403


AUDIT = """query($f: AuditEventFilter) { auditEvents(first: 50, filter: $f) { edges { node {
  requestId fields outcome codes httpStatus } } } }"""


async def test_the_audit_record_is_committed_before_the_first_part(gw: Harness, world: World,
                                                                   client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=1, min_interactions=1)
    query = "query($id: ID!) { customer(id: $id) { name ... @defer { interactions(first: 1) { edges { cursor } } } } }"
    with crm_interactions(gw, delay_s=0.3):
        async with client.stream("POST", "/graphql", headers={"accept": MULTIPART, "x-request-id": "defer-audit-1"},
                                 json={"query": query, "variables": {"id": global_id("Customer", c.erp_number)}}
                                 ) as r:
            chunks = r.aiter_raw()
            first = await anext(chunks)
            assert b'"hasNext":true' in first
            events = (await gw.query(AUDIT))["data"]["auditEvents"]["edges"]  # while the deferred part waits
            [event] = [e["node"] for e in events if e["node"]["requestId"] == "defer-audit-1"]
            assert event["outcome"] == "ok" and event["httpStatus"] == 200
            assert "Customer.interactions" in event["fields"]  # deferred fields are recorded with the rest
            rest = b"".join([chunk async for chunk in chunks])
            assert b'"hasNext":false' in rest



async def test_a_streamed_answer_is_freed_without_the_cycle_collector(gw: Harness, world: World,
                                                                      client: httpx.AsyncClient) -> None:
    """As for answers in one piece (test_customer_360): the deferred work's copies of the executor
    and the stream queues must not keep the request alive once the last part is sent."""
    from resolvers.loaders import Loaders

    c = linked_customer(world, min_orders=11, min_interactions=5)
    variables = {"id": global_id("Customer", c.erp_number)}
    for query in (DEFERRED_360, ORDER_LINES):
        await read_parts(client, query, variables)  # warm
        gc.collect()
        gc.disable()
        try:
            _, parts = await read_parts(client, query, variables)
            for _ in range(10):  # turns of the event loop for the draining task to end
                await asyncio.sleep(0)
            alive = [o for o in gc.get_objects() if type(o) is Loaders]
        finally:
            gc.enable()
        assert parts[-1].body["hasNext"] is False
        assert alive == [], query


async def test_a_client_that_hangs_up_stops_the_deferred_work(gw: Harness, world: World,
                                                              client: httpx.AsyncClient) -> None:
    c = linked_customer(world, min_orders=1, min_interactions=1)
    variables = {"id": global_id("Customer", c.erp_number)}
    with capture_logs() as logs, crm_interactions(gw, delay_s=0.3):
        async with client.stream("POST", "/graphql", json={"query": DEFERRED_360, "variables": variables},
                                 headers={"accept": MULTIPART, "x-request-id": "defer-hang-up"}) as r:
            assert b'"hasNext":true' in await anext(r.aiter_raw())
        # Leaving the block hung up, long before the interactions came back.
    [ended] = [e for e in logs if e["event"] == "incremental_delivery_ended"]
    assert ended["request_id"] == "defer-hang-up" and ended["finished"] is False and ended["parts"] == 0


async def test_answers_in_parts_are_not_kept_by_the_answer_cache(world: World, erp_sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    from tests.integration.test_cache import CACHE_ALL  # every source operation cacheable

    c = linked_customer(world, min_orders=1)
    query = "query($n: String!) { customer(number: $n) { name ... @defer { email } } }"
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", cache=CACHE_ALL) as gw:
        client = httpx.AsyncClient(transport=StreamingASGITransport(gw.app), base_url="http://gateway.test",
                                   headers=gw.client.headers)
        whole = await gw.query(query.replace("... @defer { email }", "email"), {"n": c.erp_number})
        again = await gw.query(query.replace("... @defer { email }", "email"), {"n": c.erp_number})
        assert "answerCache" in again["extensions"]  # what is answered in one piece is kept
        for _ in range(2):
            _, parts = await read_parts(client, query, {"n": c.erp_number})
            assert len(parts) == 2 and "answerCache" not in parts[0].body.get("extensions", {})
            assert merged(parts) == {"data": whole["data"]}
