"""GraphQL over HTTP: media types, status codes and clear errors for malformed requests."""

from __future__ import annotations

import pytest

from tests.integration.gateway_harness import Harness

GQL_RESPONSE = "application/graphql-response+json"
SIMPLE = "{ warehouses { code } }"


async def test_graphql_response_media_type_when_accepted(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE}, headers={"accept": GQL_RESPONSE})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(GQL_RESPONSE)
    assert [w["code"] for w in r.json()["data"]["warehouses"]]


async def test_json_is_the_default_media_type(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE})
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(("accept", "status"), [(GQL_RESPONSE, 400), ("application/json", 200)])
async def test_validation_errors_status_depends_on_media_type(gw: Harness, accept: str, status: int) -> None:
    r = await gw.client.post("/graphql", json={"query": "{ warehouses { nope } }"}, headers={"accept": accept})
    assert r.status_code == status
    body = r.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gw.sql == []


async def test_field_suggestions_are_off(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": "{ warehouse { code } }"})
    assert "Did you mean" not in r.text


async def test_syntax_error(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": "{ warehouses { "}, headers={"accept": GQL_RESPONSE})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b"{not json", "application/json", 400, "BAD_REQUEST"),
    (b'{"query": 5}', "application/json", 400, "BAD_REQUEST"),
    (b'{"variables": {}}', "application/json", 400, "BAD_REQUEST"),
    (b'["a"]', "application/json", 400, "BAD_REQUEST"),
    (b'{"query": "{ warehouses { code } }", "variables": [1]}', "application/json", 400, "BAD_REQUEST"),
    (b"{ warehouses { code } }", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
])
async def test_malformed_requests_get_a_clear_4xx(gw: Harness, body: bytes, content_type: str, status: int,
                                                  code: str) -> None:
    r = await gw.client.post("/graphql", content=body, headers={"content-type": content_type})
    assert r.status_code == status
    assert r.json()["errors"][0]["extensions"]["code"] == code
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())


async def test_unacceptable_accept_header(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE}, headers={"accept": "text/csv"})
    assert r.status_code == 406


async def test_queries_over_get(gw: Harness) -> None:
    r = await gw.client.get("/graphql", params={"query": SIMPLE}, headers={"accept": GQL_RESPONSE})
    assert r.status_code == 200 and r.json()["data"]["warehouses"]


async def test_no_mutations_over_get(gw: Harness) -> None:
    r = await gw.client.get("/graphql", params={"query": "mutation { x }"})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_graphiql_page_has_the_example_queries(gw: Harness) -> None:
    r = await gw.client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "GraphiQL" in r.text and "query Customer360" in r.text and "query OrderList" in r.text
    assert "unpkg.com" not in r.text and "script-src 'self' 'nonce-" in r.headers["content-security-policy"]
    for asset in ("graphiql.min.js", "react.production.min.js", "react-dom.production.min.js", "graphiql.min.css"):
        assert f"/graphiql/assets/{asset}" in r.text
        assert (await gw.client.get(f"/graphiql/assets/{asset}")).status_code == 200


async def test_request_id_is_echoed_or_made(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE}, headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await gw.client.post("/graphql", json={"query": SIMPLE}, headers={"x-request-id": "bad id\n"})
    assert r.headers["x-request-id"] != "bad id\n" and len(r.headers["x-request-id"]) == 32


async def test_health_endpoints(gw: Harness) -> None:
    assert (await gw.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gw.client.get("/readyz")
    assert set(ready.json()["sources"]) == {"erp", "crm", "supplier", "logistics"}


@pytest.mark.parametrize("extensions", [0, 1.5, True, False, [], ["array"], "string", "[1]", "5"])
async def test_extensions_must_be_an_object(gw: Harness, extensions: object) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE, "extensions": extensions},
                             headers={"accept": GQL_RESPONSE})
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert error["message"] == ("`extensions` is not valid JSON" if extensions == "string"
                                else "`extensions` must be a JSON object")
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())


async def test_extensions_over_get_are_a_json_object_too(gw: Harness) -> None:
    r = await gw.client.get("/graphql", params={"query": SIMPLE, "extensions": "[1]"})
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    r = await gw.client.get("/graphql", params={"query": SIMPLE, "extensions": '{"some": "value"}'})
    assert r.status_code == 200 and r.json()["data"]["warehouses"]


@pytest.mark.parametrize("extensions", [None, {}, {"some": "value"}])
async def test_extensions_absent_null_or_an_object_are_fine(gw: Harness, extensions: object) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE, "extensions": extensions})
    assert r.status_code == 200 and "errors" not in r.json()


@pytest.mark.parametrize("given", ["8e03978e-40d5-43e8-bc93-6894a57f9324", '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
                                   "k", "x" * 255, '"with \\"quotes\\" and \\\\"', '"a b"', " padded "])
async def test_idempotency_key_forms_that_are_accepted(gw: Harness, given: str) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE}, headers={"idempotency-key": given})
    assert r.status_code == 200 and "errors" not in r.json()


@pytest.mark.parametrize("given", ["", '""', "x" * 256, '"' + "x" * 256 + '"', '"unterminated', '"a"b', '"a" "b"',
                                   '"bad \\escape"', "tab\tinside", "ключ".encode(), b"\x01"])
async def test_a_malformed_idempotency_key_is_a_400(gw: Harness, given: str | bytes) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE}, headers={"idempotency-key": given})
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST" and "`Idempotency-Key` must be 1 to 255" in error["message"]
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())


async def test_idempotency_key_is_sent_once(gw: Harness) -> None:
    r = await gw.client.post("/graphql", json={"query": SIMPLE},
                             headers=[("idempotency-key", "a"), ("idempotency-key", "b")])
    assert r.status_code == 400 and r.json()["errors"][0]["message"] == "send one `Idempotency-Key` header"
