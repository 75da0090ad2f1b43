"""Compression: large answers are gzipped for clients that accept it, small ones and streams are not."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from demo.world import World
from gateway.app import middleware
from gateway.settings import Settings
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_customer_360 import global_id
from tests.integration.test_defer import DEFERRED_360, StreamingASGITransport, crm_interactions, read_parts

FIFTY_ORDERS = """{ orders(first: 50) { edges { node { number placedAt customer { name }
  lines { quantity product { sku stock { available } } } } } } }"""


@pytest.fixture(scope="module")
async def plain(world: World, erp_sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Harness]:
    """A gateway whose answers carry no timings, so the same query gets the same bytes twice."""
    db = Path(tmp_path_factory.mktemp("compression")) / "gateway.db"
    async with running_gateway(world, erp_sqlite_url, db, expose_upstream_calls=False) as harness:
        yield harness


async def _raw(gw: Harness, query: str, accept_encoding: str) -> tuple[httpx.Response, bytes]:
    """The answer as sent on the wire: httpx would otherwise decompress it."""
    async with gw.client.stream("POST", "/graphql", json={"query": query}, headers={
            "accept-encoding": accept_encoding, "x-request-id": f"compression-{accept_encoding}"}) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, body


async def test_a_large_answer_is_gzipped_and_decompresses_to_the_same_bytes(plain: Harness) -> None:
    identity, uncompressed = await _raw(plain, FIFTY_ORDERS, "identity")
    gzipped, compressed = await _raw(plain, FIFTY_ORDERS, "gzip")
    assert identity.status_code == gzipped.status_code == 200
    assert "content-encoding" not in identity.headers and len(uncompressed) > 10_000
    answer = json.loads(uncompressed)
    assert len(answer["data"]["orders"]["edges"]) == 50 and "errors" not in answer
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(compressed) == uncompressed
    assert len(compressed) < len(uncompressed) / 4
    assert int(gzipped.headers["content-length"]) == len(compressed)
    assert gzipped.headers["content-type"] == identity.headers["content-type"]
    assert gzipped.headers["content-type"].startswith("application/json")
    assert gzipped.headers["x-request-id"] == "compression-gzip"
    assert "accept-encoding" in gzipped.headers["vary"].lower()


async def test_a_small_answer_is_not_compressed(plain: Harness) -> None:
    response, body = await _raw(plain, "{ warehouses { code } }", "gzip")
    assert response.status_code == 200 and len(body) < 1024
    assert "content-encoding" not in response.headers
    assert json.loads(body)["data"]["warehouses"]


async def test_compression_can_be_turned_off(world: World, erp_sqlite_url: str, tmp_path: Path) -> None:
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", compress_min_bytes=0) as gw:
        response, body = await _raw(gw, FIFTY_ORDERS, "gzip")
    assert response.status_code == 200 and len(body) > 10_000
    assert "content-encoding" not in response.headers


@pytest.mark.parametrize("accept", ["multipart/mixed;deferSpec=20220824", "text/event-stream"])
async def test_deferred_parts_are_neither_held_back_nor_compressed(plain: Harness, world: World, accept: str) -> None:
    c = linked_customer(world, min_orders=11, min_interactions=5)
    client = httpx.AsyncClient(transport=StreamingASGITransport(plain.app), base_url="http://gateway.test",
                               headers=plain.client.headers)
    async with client:
        await read_parts(client, DEFERRED_360, {"id": global_id("Customer", c.erp_number)}, accept=accept)  # warm
        with crm_interactions(plain, delay_s=0.3):
            r, parts = await read_parts(client, DEFERRED_360, {"id": global_id("Customer", c.erp_number)},
                                        accept=accept, headers={"accept-encoding": "gzip"})
    assert r.status_code == 200 and "content-encoding" not in r.headers
    first, deferred = parts[:2]
    assert len(orjson.dumps(first.body)) > 1024  # large enough to be compressed, were it one answer
    assert first.at_ms < 100 and deferred.at_ms >= 300


@pytest.mark.parametrize("media_type", ["multipart/mixed; boundary=\"-\"; deferSpec=20220824", "text/event-stream"])
async def test_streams_are_passed_on_part_by_part_uncompressed(media_type: str) -> None:
    """Incremental delivery must reach the client as each part is ready, so the gateway's middleware
    neither holds parts back nor compresses them, however large they are."""
    parts = [b"-" * 4096 + b"\r\n" for _ in range(3)]

    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for part in parts:
                yield part
        return StreamingResponse(body(), media_type=media_type)

    app = Starlette(routes=[Route("/stream", stream)],
                    middleware=middleware(Settings(server={"compress_min_bytes": 1024})))
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            assert b"content-encoding" not in {name.lower() for name, _ in message["headers"]}
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "method": "GET",
             "path": "/stream", "raw_path": b"/stream", "query_string": b"",
             "headers": [(b"accept-encoding", b"gzip")], "http_version": "1.1", "scheme": "http",
             "server": ("gateway.test", 80), "client": ("127.0.0.1", 1), "root_path": ""}
    await app(scope, receive, send)
    assert [body for body in sent if body] == parts
