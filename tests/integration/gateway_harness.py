"""A gateway wired to the sample systems for GraphQL-level tests.

The ERP is a real SQLite database seeded from a small world; the CRM and partner systems are the real
sample apps, reached through httpx's in-process ASGI transport wrapped in a request counter, so tests
can check upstream call counts independently of the gateway's own records.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from starlette.applications import Starlette

from auth.scopes import ALL_SCOPES, DEFAULT_ROLES, PARTNER_SCOPES
from demo.crm.app import create_app as crm_app
from demo.faults import Faults
from demo.partners.logistics import create_app as logistics_app
from demo.partners.supplier import create_app as supplier_app
from demo.secrets import DemoSecrets
from demo.world import World
from gateway.app import build_app
from gateway.settings import Settings
from tests.tokens import make_jwt


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that reach a sample system, by path."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.paths: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)

    @property
    def total(self) -> int:
        return sum(self.paths.values())


@dataclass
class Harness:
    client: httpx.AsyncClient
    app: Starlette
    world: World
    upstream: Mapping[str, CountingTransport]
    faults: Mapping[str, Faults]
    secrets: DemoSecrets
    sql: list[str] = field(default_factory=list)
    #: Stops and restarts counting SQL statements (set by running_gateway).
    watch_sql: Callable[[bool], None] = lambda on: None

    @contextlib.contextmanager
    def unwatched_sql(self) -> Iterator[None]:
        """Nothing listens to statement execution meanwhile, so reads run as in production (sources.sql)."""
        self.watch_sql(False)
        try:
            yield
        finally:
            self.watch_sql(True)

    def reset_counts(self) -> None:
        for transport in self.upstream.values():
            transport.paths.clear()
        self.sql.clear()

    def jwt(self, *roles: str, **claims: Any) -> str:
        return make_jwt(self.secrets.jwt_secret, roles=list(roles), **claims)

    async def partner_token(self, partner_id: str, scopes: frozenset[str] | None = None, **kwargs: Any) -> str:
        plain, _ = await self.app.state.tokens.create(name=kwargs.get("name", "test"), partner_id=partner_id,
                                                      scopes=scopes or PARTNER_SCOPES,
                                                      expires_at=kwargs.get("expires_at"))
        token: str = plain
        return token

    async def trust(self, query: str) -> str:
        """Register a trusted document (what `gateway documents add` does) and return its id."""
        doc = await self.app.state.documents.add("test", query)
        doc_id: str = doc.id
        return doc_id

    async def partner_query(self, query: str, variables: dict[str, Any] | None = None, *, token: str,
                            status: int = 200) -> dict[str, Any]:
        """Run `query` the way partners must: as a registered trusted document, by id."""
        response = await self.client.post(
            "/graphql", json={"documentId": await self.trust(query), "variables": variables},
            headers=self.bearer(token))
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    def bearer(self, token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    async def query(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
                    headers: dict[str, str] | None = None, status: int = 200) -> dict[str, Any]:
        """POST a query as `token` (default: an admin JWT)."""
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables},
            headers={**self.bearer(token or self.jwt("admin")), **(headers or {})})
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body


def test_roles() -> dict[str, list[str]]:
    """The default roles plus, for every scope, `all-but:<scope>` and `only:<scope>` (for the matrix)."""
    roles = {role: sorted(scopes) for role, scopes in DEFAULT_ROLES.items()}
    for scope in ALL_SCOPES:
        roles[f"all-but:{scope}"] = sorted(ALL_SCOPES - {scope})
        roles[f"only:{scope}"] = [scope]
    return roles


def settings_for(erp_url: str, db_path: Path, secrets: DemoSecrets, limits: dict[str, Any] | None = None,
                 auth: dict[str, Any] | None = None, cache: dict[str, Any] | None = None,
                 audit: dict[str, Any] | None = None, resilience: dict[str, Any] | None = None,
                 cors: dict[str, Any] | None = None, apq: dict[str, Any] | None = None,
                 operations: dict[str, Any] | None = None, **server: Any) -> Settings:
    # Tests share gateways: unless a test asks for a policy, no retries and a breaker that never opens,
    # so one test's faults cannot leak into the next one's answers.
    policy = resilience if resilience is not None else {"retries": 0, "breaker_failures": 1000,
                                                        "breaker_error_rate": 1.0}
    return Settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        server={"expose_upstream_calls": True, **server},
        auth={"jwt_secret": secrets.jwt_secret, "roles": test_roles(), **(auth or {})},
        limits={"rate_per_second": 10_000, "rate_burst": 10_000, **(limits or {})},
        # Off unless a test turns it on: call-count tests count every upstream call.
        cache={"enabled": cache is not None, **(cache or {})},
        audit={"window_ms": 1, **(audit or {})},
        apq=apq or {},
        cors=cors or {},
        operations=operations or {},
        sources={
            "erp": {"url": erp_url, "resilience": policy},
            "crm": {"base_url": "http://crm.test", "resilience": policy, "auth": {
                "kind": "oauth2_client_credentials", "client_id": secrets.crm_client_id,
                "client_secret": secrets.crm_client_secret}},
            "supplier": {"base_url": "http://supplier.test", "resilience": policy, "auth": {
                "kind": "api_key", "header": "X-Api-Key", "key": secrets.supplier_api_key}},
            "logistics": {"base_url": "http://logistics.test", "resilience": policy, "auth": {
                "kind": "basic", "username": secrets.logistics_user, "password": secrets.logistics_password}},
        },
    )


@asynccontextmanager
async def running_gateway(world: World, erp_url: str, db_path: Path, *, secrets: DemoSecrets | None = None,
                          limits: dict[str, Any] | None = None, auth: dict[str, Any] | None = None,
                          cache: dict[str, Any] | None = None, audit: dict[str, Any] | None = None,
                          resilience: dict[str, Any] | None = None, cors: dict[str, Any] | None = None,
                          operations: dict[str, Any] | None = None, clock: Callable[[], float] = time.time,
                          monotonic: Callable[[], float] = time.monotonic,
                          **server: Any) -> AsyncIterator[Harness]:
    secrets = secrets or DemoSecrets.generate()
    faults = {name: Faults() for name in ("crm", "supplier", "logistics")}
    upstream = {
        "crm": CountingTransport(crm_app(world, client_id=secrets.crm_client_id,
                                         client_secret=secrets.crm_client_secret, admin_key=secrets.admin_key,
                                         faults=faults["crm"])),
        "supplier": CountingTransport(supplier_app(world, api_key=secrets.supplier_api_key,
                                                   admin_key=secrets.admin_key, faults=faults["supplier"])),
        "logistics": CountingTransport(logistics_app(world, username=secrets.logistics_user,
                                                     password=secrets.logistics_password,
                                                     admin_key=secrets.admin_key, faults=faults["logistics"])),
    }
    settings = settings_for(erp_url, db_path, secrets, limits, auth, cache, audit, resilience, cors=cors,
                            operations=operations, **server)
    app = build_app(settings, transports=upstream, warm=False, clock=clock, monotonic=monotonic)
    async with app.router.lifespan_context(app):
        services = app.state.services
        for crm_id, erp_number in world.manual_links:
            await services.links.put(crm_id, erp_number, "test")
        await services.crosswalk.index()  # built once per process; tests count calls of queries only
        harness = Harness(client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                   base_url="http://gateway.test",
                                                   headers={"authorization": "Bearer " + make_jwt(
                                                       secrets.jwt_secret, roles=["admin"], expires_in=3600)}),
                          app=app, world=world, upstream=upstream, faults=faults, secrets=secrets)

        def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            harness.sql.append(statement)

        engine = services.erp.transport.engine.sync_engine

        def watch_sql(on: bool) -> None:
            (event.listen if on else event.remove)(engine, "before_cursor_execute", on_statement)

        harness.watch_sql = watch_sql
        watch_sql(True)
        try:
            async with harness.client:
                yield harness
        finally:
            if event.contains(engine, "before_cursor_execute", on_statement):
                watch_sql(False)
