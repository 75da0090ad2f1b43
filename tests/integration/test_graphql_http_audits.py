"""GraphQL over HTTP conformance: the server audits of the `graphql-http` package, ported one for one.

Every audit of the package's `serverAudits` (graphql/graphql-http, src/audits/server.ts, as of 1.23)
is here with its id, its requirement level, its request and its expectations, and every one is
asserted, MAY included: a failure names the audit (`test_server_audit[58B1-anonymous]`).

The package runs unauthenticated against a URL; so does this module, because anonymous callers may
run `{ __typename }`. Five audits (BF61, 2EA1, 28B9, D6D5, 6A70) ask for `__type`, which is
introspection, refused to anonymous callers (401) and partners by design: those five run with a staff
token, and every audit also runs with one, so the whole list passes for the callers allowed to send it.

Requests carry exactly the headers the audit names: no Accept header when the audit sets none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.integration.gateway_harness import Harness

JSON = "application/json"
GQL_RESPONSE = "application/graphql-response+json"
TYPENAME = "{ __typename }"
TYPE_BY_NAME = "query Type($name: String!) { __type(name: $name) { name } }"
UNKNOWN_FIELD = "{ 8f31403dfe404bccbb0e835f2629c6a7 }"  # a field no schema has
COERCE_FAILURE = "query CoerceFailure($id: ID!){ __typename }"

#: One failed expectation's reason, as the package words it; None when it holds.
Check = Callable[[httpx.Response], str | None]


@dataclass(frozen=True)
class Request:
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Audit:
    id: str
    name: str  # starts with MUST, SHOULD or MAY
    request: Request
    checks: tuple[Check, ...]
    introspects: bool = False  # asks for `__type`: only internal principals may


def post(body: Any, *, accept: str | None = None, content_type: str | None = JSON) -> Request:
    """A POST whose body is `JSON.stringify(body)`, or `body` itself when it is already text."""
    raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    headers = {"content-type": content_type} if content_type else {}
    if accept:
        headers["accept"] = accept
    return Request("POST", headers, raw.encode())


def get(*, accept: str | None = None, **params: str) -> Request:
    return Request("GET", {"accept": accept} if accept else {}, params=params)


def status_is(code: int) -> Check:
    return lambda r: None if r.status_code == code else f"Response status code is not {code}"


def status_between(*ranges: tuple[int, int]) -> Check:
    def check(r: httpx.Response) -> str | None:
        if any(low <= r.status_code <= high for low, high in ranges):
            return None
        return f"Response status is not between any of {ranges}"
    return check


def content_type_contains(part: str) -> Check:
    return lambda r: None if part in r.headers.get("content-type", "") else f"content-type does not contain {part}"


def utf8_body(r: httpx.Response) -> str | None:
    try:
        r.content.decode("utf-8")
    except UnicodeDecodeError:
        return "Response body is not UTF-8 encoded"
    return None


def _execution_result(r: httpx.Response) -> dict[str, Any] | str:
    try:
        body = json.loads(r.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "Response body is not valid JSON"
    return body if isinstance(body, dict) else "Response body is not an execution result"


def without(key: str) -> Check:
    """`bodyAsExecutionResult.notToHaveProperty(key)` (and `data.toBe(undefined)` for `data`)."""
    def check(r: httpx.Response) -> str | None:
        body = _execution_result(r)
        if isinstance(body, str):
            return body
        return f'Response body execution result has a property "{key}"' if key in body else None
    return check


def type_name(value: Any) -> str:
    """The package's `extendedTypeof`, for the audit names."""
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number"}[type(value)]


INVALID_QUERIES: list[Any] = [{"obj": "ect"}, 0, False, ["array"]]
INVALID_VARIABLES: list[Any] = ["string", 0, False, ["array"]]
NOT_JSON = '{ "not a JSON'


def _audits() -> list[Audit]:
    ok, no_errors, no_data = status_is(200), without("errors"), without("data")
    audits = [
        # Media types
        Audit("22EB", "SHOULD accept application/graphql-response+json and match the content-type",
              post({"query": TYPENAME}, accept=GQL_RESPONSE), (ok, content_type_contains(GQL_RESPONSE))),
        Audit("4655", "MUST accept application/json and match the content-type",
              post({"query": TYPENAME}, accept=JSON), (ok, content_type_contains(JSON))),
        Audit("47DE", "SHOULD accept */* and use application/json for the content-type",
              post({"query": TYPENAME}, accept="*/*"), (ok, content_type_contains(JSON))),
        Audit("80D8", "SHOULD assume application/json content-type when accept is missing",
              post({"query": TYPENAME}), (ok, content_type_contains(JSON))),
        Audit("82A3", "MUST use utf-8 encoding when responding", post({"query": TYPENAME}), (ok, utf8_body)),
        Audit("BF61", "MUST accept utf-8 encoded request",
              post({"query": '{ __type(name: "Run🏃Swim🏊") { name } }'}, content_type=f"{JSON}; charset=utf-8"),
              (ok,), introspects=True),
        Audit("78D5", "MUST assume utf-8 in request if encoding is unspecified", post({"query": TYPENAME}), (ok,)),
        # Request
        Audit("2C94", "MUST accept POST requests", post({"query": TYPENAME}), (ok,)),
        Audit("5A70", "MAY accept application/x-www-form-urlencoded formatted GET requests",
              get(query=TYPENAME), (ok,)),
        # Request GET
        Audit("9C48", "MAY NOT allow executing mutations on GET requests",
              get(accept=GQL_RESPONSE, query="mutation { __typename }"), (status_between((400, 499)),)),
        # Request POST
        Audit("9ABE", "SHOULD respond with 4xx status code if content-type is not supplied on POST requests",
              post({"query": TYPENAME}, content_type=None), (status_between((400, 499)),)),
        Audit("03D4", "MUST accept application/json POST requests", post({"query": TYPENAME}), (ok,)),
        Audit("A5BF", "MAY use 400 status code when request body is missing on POST",
              Request("POST", {"content-type": JSON}), (status_is(400),)),
        # Request parameters
        Audit("423L", "MAY use 400 status code on missing {query} parameter",
              post({"notquery": TYPENAME}, accept=GQL_RESPONSE), (status_is(400),)),
        *(Audit(f"LKJ{i}", f"MAY use 400 status code on {type_name(v)} {{query}} parameter",
                post({"query": v}), (status_is(400),)) for i, v in enumerate(INVALID_QUERIES)),
        Audit("34A2", "SHOULD allow string {query} parameter when accepting application/graphql-response+json",
              post({"query": TYPENAME}, accept=GQL_RESPONSE), (ok,)),
        Audit("13EE", "MUST allow string {query} parameter when accepting application/json",
              post({"query": TYPENAME}, accept=JSON), (ok, no_errors)),
        *(Audit(f"6C0{i}", f"MAY use 400 status code on {type_name(v)} {{operationName}} parameter",
                post({"operationName": v, "query": TYPENAME}), (status_is(400),))
          for i, v in enumerate(INVALID_QUERIES)),
        Audit("8161", "SHOULD allow string {operationName} parameter when accepting "
              "application/graphql-response+json",
              post({"operationName": "Query", "query": "query Query { __typename }"}, accept=GQL_RESPONSE), (ok,)),
        Audit("B8B3", "MUST allow string {operationName} parameter when accepting application/json",
              post({"operationName": "Query", "query": "query Query { __typename }"}, accept=JSON),
              (ok, no_errors)),
    ]
    for i, parameter in enumerate(["variables", "operationName", "extensions"]):
        audits += [
            Audit(f"94B{i}", f"SHOULD allow null {{{parameter}}} parameter when accepting "
                  "application/graphql-response+json",
                  post({"query": TYPENAME, parameter: None}, accept=GQL_RESPONSE), (ok, no_errors)),
            Audit(f"022{i}", f"MUST allow null {{{parameter}}} parameter when accepting application/json",
                  post({"query": TYPENAME, parameter: None}, accept=JSON), (ok, no_errors)),
        ]
    audits += [
        *(Audit(f"476{i}", f"MAY use 400 status code on {type_name(v)} {{variables}} parameter",
                post({"query": TYPENAME, "variables": v}), (status_is(400),))
          for i, v in enumerate(INVALID_VARIABLES)),
        Audit("2EA1", "SHOULD allow map {variables} parameter when accepting application/graphql-response+json",
              post({"query": TYPE_BY_NAME, "variables": {"name": "sometype"}}, accept=GQL_RESPONSE), (ok,),
              introspects=True),
        Audit("28B9", "MUST allow map {variables} parameter when accepting application/json",
              post({"query": TYPE_BY_NAME, "variables": {"name": "sometype"}}, accept=JSON), (ok, no_errors),
              introspects=True),
        Audit("D6D5", "MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting "
              "application/graphql-response+json",
              get(accept=GQL_RESPONSE, query=TYPE_BY_NAME, variables='{"name":"sometype"}'), (ok, no_errors),
              introspects=True),
        Audit("6A70", "MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting "
              "application/json",
              get(accept=JSON, query=TYPE_BY_NAME, variables='{"name":"sometype"}'), (ok, no_errors),
              introspects=True),
        *(Audit(f"58B{i}", f"MAY use 400 status code on {type_name(v)} {{extensions}} parameter",
                post({"query": TYPENAME, "extensions": v}), (status_is(400),))
          for i, v in enumerate(INVALID_VARIABLES)),
        Audit("428F", "SHOULD allow map {extensions} parameter when accepting application/graphql-response+json",
              post({"query": TYPENAME, "extensions": {"some": "value"}}, accept=GQL_RESPONSE), (ok,)),
        Audit("1B7A", "MUST allow map {extensions} parameter when accepting application/json",
              post({"query": TYPENAME, "extensions": {"some": "value"}}, accept=JSON), (ok, no_errors)),
        Audit("B6DC", "MAY use 2xx, 4xx, or 5xx status codes on JSON parsing failure when accepting "
              "application/json",
              post(NOT_JSON, accept=JSON), (status_between((200, 299), (400, 499), (500, 599)),)),
        Audit("BCF8", "SHOULD use 400 status code on JSON parsing failure when accepting application/json",
              post(NOT_JSON, accept=JSON), (status_is(400),)),
        Audit("B7N8", "SHOULD use 400 status code on JSON parsing failure when accepting "
              "application/graphql-response+json",
              post(NOT_JSON, accept=GQL_RESPONSE), (status_is(400),)),
        Audit("8764", "MAY use 4xx or 5xx status codes if parameters are invalid",
              post({"qeury": TYPENAME}), (status_between((400, 599)),)),
        Audit("3E3A", "MAY use 400 status code if parameters are invalid",
              post({"qeury": TYPENAME}), (status_is(400),)),
        # Response application/json
        Audit("572B", "SHOULD use 200 status code on document parsing failure when accepting application/json",
              post({"query": "{"}, accept=JSON), (ok,)),
        Audit("FDE2", "SHOULD use 200 status code on document validation failure when accepting application/json",
              post({"query": UNKNOWN_FIELD}, accept=JSON), (ok,)),
        Audit("7B9B", "SHOULD use a status code of 200 on variable coercion failure when accepting application/json",
              post({"query": COERCE_FAILURE, "variables": {"id": None}}, accept=JSON), (ok,)),
        # Response application/graphql-response+json
        Audit("865D", "SHOULD use 4xx or 5xx status codes on document parsing failure when accepting "
              "application/graphql-response+json",
              post({"query": "{"}, accept=GQL_RESPONSE), (status_between((400, 599)),)),
        Audit("556A", "SHOULD use 400 status code on document parsing failure when accepting "
              "application/graphql-response+json",
              post({"query": "{"}, accept=GQL_RESPONSE), (status_is(400),)),
        Audit("D586", "SHOULD not contain the data entry on document parsing failure when accepting "
              "application/graphql-response+json",
              post({"query": "{"}, accept=GQL_RESPONSE), (no_data,)),
        Audit("51FE", "SHOULD use 4xx or 5xx status codes on document validation failure when accepting "
              "application/graphql-response+json",
              post({"query": UNKNOWN_FIELD}, accept=GQL_RESPONSE), (status_between((400, 599)),)),
        Audit("74FF", "SHOULD use 400 status code on document validation failure when accepting "
              "application/graphql-response+json",
              post({"query": UNKNOWN_FIELD}, accept=GQL_RESPONSE), (status_is(400),)),
        Audit("5E5B", "SHOULD not contain the data entry on document validation failure when accepting "
              "application/graphql-response+json",
              post({"query": UNKNOWN_FIELD}, accept=GQL_RESPONSE), (no_data,)),
        Audit("86EE", "SHOULD use a status code of 400 on variable coercion failure when accepting "
              "application/graphql-response+json",
              post({"query": COERCE_FAILURE, "variables": {"id": None}}, accept=GQL_RESPONSE), (status_is(400),)),
    ]
    return audits


AUDITS = _audits()
CALLERS = ("anonymous", "staff")
CASES = [pytest.param(audit, caller, id=f"{audit.id}-{caller}")
         for audit in AUDITS for caller in CALLERS if caller == "staff" or not audit.introspects]


@pytest.fixture
async def bare_client(gw: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends only the headers a request names (no default Accept, no credentials)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gateway.test") as client:
        del client.headers["accept"]
        yield client


async def send(client: httpx.AsyncClient, request: Request, authorization: str | None) -> httpx.Response:
    headers = {**request.headers, **({"authorization": authorization} if authorization else {})}
    return await client.request(request.method, "/graphql", headers=headers, content=request.body,
                                params=request.params or None)


def test_the_list_is_the_packages() -> None:
    """61 audits with the package's ids, each once, and each name with its requirement level first."""
    ids = [a.id for a in AUDITS]
    assert len(ids) == 61 and len(set(ids)) == 61
    assert all(a.name.split(" ")[0] in ("MUST", "SHOULD", "MAY") for a in AUDITS)
    assert {a.id for a in AUDITS if a.introspects} == {"BF61", "2EA1", "28B9", "D6D5", "6A70"}


@pytest.mark.parametrize(("audit", "caller"), CASES)
async def test_server_audit(gw: Harness, bare_client: httpx.AsyncClient, audit: Audit, caller: str) -> None:
    authorization = f"Bearer {gw.jwt('ops')}" if caller == "staff" else None
    response = await send(bare_client, audit.request, authorization)
    failures = [reason for check in audit.checks if (reason := check(response)) is not None]
    assert not failures, f"{audit.id} {audit.name}: {failures}; {response.status_code} {response.text[:300]}"


@pytest.mark.parametrize("audit", [a for a in AUDITS if a.introspects], ids=lambda a: a.id)
async def test_introspecting_audits_are_refused_to_anonymous_callers(bare_client: httpx.AsyncClient,
                                                                      audit: Audit) -> None:
    response = await send(bare_client, audit.request, None)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
