"""The ASGI application: routes, start-up and shutdown."""

from __future__ import annotations

import asyncio
import gc
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import strawberry
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from auth.authenticate import Authenticator
from auth.jwt import JwtAuthenticator, JwtConfig
from auth.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from auth.scopes import CUSTOMERS_PII
from auth.tokens import SqlTokenStore, TokenAuthenticator
from gateway import hooks
from gateway.answers import AnswerCache
from gateway.apq import build_apq_store
from gateway.audit.log import AuditLog
from gateway.audit.sink import SqlAuditSink
from gateway.audit.store import SqlAuditReader
from gateway.db import upgrade
from gateway.documents import DocumentStore
from gateway.errors import ErrorCodes
from gateway.graphiql import ASSETS_PATH, assets_app
from gateway.http import GraphQLEndpoint
from gateway.idempotency import IdempotencyStore
from gateway.policy import OperationPolicy, ParsedDocuments
from gateway.services import build_cache, build_services, close_services
from gateway.settings import Settings
from resolvers.context import Services
from resolvers.permissions import FIELD_SCOPES
from schema.schema import build_schema
from sources.base import Health, Source
from sources.errors import SourceError, SourceTimeout
from sources.resilience import Resilience
from sources.sql import make_engine
from sources.tasks import failure_fields, watch

log = structlog.get_logger("gateway.app")


async def _warm_crosswalk(services: Services) -> None:
    """Build the crosswalk before the first request needs it; a failure here is retried on demand."""
    try:
        index = await services.crosswalk.index()
    except SourceError as exc:
        log.warning("crosswalk_not_ready", source=exc.source, detail=exc.detail)
    else:
        log.info("crosswalk_ready", **index.counts())


async def _readiness(name: str, source: Source, resilience: Resilience) -> tuple[bool, dict[str, object]]:
    """One source's part of /readyz. Whatever its health check raises (an open breaker, a timeout, a bug)
    makes the source not ready, with the reason; it never turns the probe itself into an error page."""
    code: str | None = None
    try:
        health = await source.health()
    except SourceError as exc:
        health, code = Health(name, False, exc.public_message), exc.code
    except TimeoutError:
        health, code = Health(name, False, f"Source '{name}' did not answer in time"), SourceTimeout.code
    except Exception as exc:  # a readiness probe answers for every failure; this one is logged, not hidden
        log.error("health_check_failed", source=name, **failure_fields(exc))
        health, code = Health(name, False, type(exc).__name__), "HEALTH_CHECK_FAILED"
    return health.ok, {"ok": health.ok, "detail": health.detail, "code": code,
                       "breaker": resilience.breaker.state, "retries": resilience.retries}


def gateway_schema() -> strawberry.Schema:
    """The schema with the gateway's extensions: one per process, for the app and the CLI alike."""
    return build_schema((ErrorCodes, ParsedDocuments, OperationPolicy))


def authenticator(settings: Settings, tokens: SqlTokenStore) -> Authenticator:
    auth = settings.auth
    jwt = None
    if auth.jwt_secret is not None or auth.jwks_url is not None:
        config = JwtConfig(issuer=auth.jwt_issuer, audience=auth.jwt_audience,
                           secret=auth.jwt_secret.get_secret_value() if auth.jwt_secret else None,
                           jwks_url=auth.jwks_url, leeway_s=auth.jwt_leeway_s)
        jwt = JwtAuthenticator(config, {role: frozenset(scopes) for role, scopes in auth.roles.items()})
    return Authenticator(TokenAuthenticator(tokens), jwt)


async def start_audit(settings: Settings, db: AsyncEngine) -> AuditLog:
    """The audit sink on its database (migrated), its group-commit task started."""
    config = settings.audit
    engine = db
    if config.url:
        engine = make_engine(config.url, pool_size=2)
        await upgrade(engine)
    sink = SqlAuditSink(engine, window_ms=config.window_ms, max_batch=config.max_batch,
                        spool=config.spool_path if config.on_failure == "spool" else None,
                        write_timeout_s=config.write_timeout_s)
    await sink.start()
    key = config.variables_key.get_secret_value().encode() if config.variables_key else secrets.token_bytes(32)
    pii = {name for name, scopes in FIELD_SCOPES.items() if CUSTOMERS_PII in scopes}
    return AuditLog(sink, gateway_schema()._schema, pii, key)


def tune_gc(threshold: int) -> None:
    """Keep the cyclic garbage collector off the request path of a served process.

    What start-up built (the schema, clients, the crosswalk index: some 180,000 objects) lives as long
    as the process, yet every full collection walked all of it: about 100 ms, every few requests under
    load. Frozen, it is never walked again. Requests free almost everything by reference counting (see
    `schema.executor`), so young collections can be rare: `threshold` allocations apart.
    """
    gc.collect()
    gc.freeze()
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


async def _tune_gc_after(warming: asyncio.Task[None] | None, threshold: int) -> None:
    if warming is not None:
        await asyncio.wait([warming])  # the crosswalk index is frozen with the rest of start-up
    tune_gc(threshold)


def build_app(settings: Settings, *, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
              warm: bool = True, clock: Callable[[], float] = time.time,
              monotonic: Callable[[], float] = time.monotonic, served: bool = False) -> Starlette:
    """The gateway for these settings. `transports` routes REST sources in-process (tests).

    `served`: this app is the process's one app (`gateway serve`), so it may tune the process's garbage
    collector once start-up is done.
    """
    schema = gateway_schema()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = make_engine(settings.database_url, pool_size=5)
        await upgrade(db)
        services = await build_services(settings, db, transports, cache=build_cache(settings, clock),
                                        clock=monotonic)
        answers = (AnswerCache(services.cache, clock=clock) if settings.cache.enabled and settings.cache.answers
                   else None)
        app.state.tokens = SqlTokenStore(db)
        app.state.documents = DocumentStore(db)
        audit = await start_audit(settings, db) if settings.audit.enabled else None
        if audit is not None:
            services = replace(services, audit=SqlAuditReader(audit.sink.engine))
        app.state.services = services
        if services.operations is not None:
            await services.operations.start()  # resumes what a previous run of the gateway left unfinished
        limits = settings.limits
        limiter: RateLimiter = (
            RedisRateLimiter(limits.redis_url, limits.rate_per_second, limits.rate_burst) if limits.redis_url
            else MemoryRateLimiter(limits.rate_per_second, limits.rate_burst))
        app.state.audit = audit
        apq = build_apq_store(settings)
        idempotency = IdempotencyStore(db, settings.idempotency, clock=clock)
        app.state.graphql = GraphQLEndpoint(schema, services, settings, authenticator(settings, app.state.tokens),
                                            app.state.documents, limiter, audit, answers, apq,
                                            idempotency)
        warming = watch(asyncio.create_task(_warm_crosswalk(services)), "crosswalk_warm_failed") if warm else None
        tuning = (watch(asyncio.create_task(_tune_gc_after(warming, settings.server.gc_threshold)), "gc_tuning_failed")
                  if served else None)
        try:
            yield
        finally:
            for task in (warming, tuning):
                if task is not None:
                    task.cancel()
            if audit is not None:
                await audit.sink.aclose()
                if audit.sink.engine is not db:
                    await audit.sink.engine.dispose()
            await close_services(services)
            idempotency.close()
            await limiter.aclose()
            if apq is not None:
                await apq.aclose()
            await db.dispose()

    async def graphql(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.graphql
        return await endpoint(request)

    async def hook(request: Request) -> Response:
        return await hooks.receive(request, request.app.state.services, settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        services: Services = request.app.state.services
        sources: list[tuple[str, Source, Resilience]] = [
            ("erp", services.erp, services.erp.transport.resilience),
            ("crm", services.crm, services.crm.transport.resilience),
            ("supplier", services.supplier, services.supplier.transport.resilience),
            ("logistics", services.logistics, services.logistics.transport.resilience)]
        checks = await asyncio.gather(*(_readiness(*source) for source in sources))
        ready = all(ok for ok, _ in checks)
        report = {name: check for (name, _, _), (_, check) in zip(sources, checks, strict=True)}
        return JSONResponse({"status": "ready" if ready else "degraded", "sources": report},
                            status_code=200 if ready else 503)

    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/hooks/{source}", hook, methods=["POST"]),
    ]
    if settings.server.graphiql:
        routes.append(Mount(ASSETS_PATH, app=assets_app(), name="graphiql-assets"))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware(settings))


#: Streams are sent part by part as they are ready (incremental delivery, subscriptions): never held
#: back to compress them.
STREAMED_TYPES = ("multipart/mixed", "text/event-stream")


def middleware(settings: Settings) -> list[Middleware]:
    """What wraps every route: CORS (outermost, so preflights are answered before anything else runs:
    no authentication, rate limit or audit record), then compression."""
    stack: list[Middleware] = []
    cors = settings.cors
    if cors.allow_origins:
        # No allow_credentials: the gateway takes no cookies; tokens travel in the Authorization header.
        stack.append(Middleware(CORSMiddleware, allow_origins=cors.allow_origins, allow_methods=["GET", "POST"],
                                allow_headers=cors.allow_headers, expose_headers=cors.expose_headers,
                                max_age=cors.max_age_s))
    if settings.server.compress_min_bytes:
        # Level 6 (zlib's default): answers some 5% larger than at 9, for a third of the CPU time.
        stack.append(Middleware(GZipMiddleware, minimum_size=settings.server.compress_min_bytes, compresslevel=6,
                                exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, *STREAMED_TYPES)))
    return stack
