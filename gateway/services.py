"""Build the long-lived parts (sources, crosswalk) from settings, once per process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlparse

import httpx
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import upgrade
from gateway.keys import shared_key
from gateway.settings import (
    ApiKeyAuth,
    BasicAuth,
    OAuth2ClientCredentialsAuth,
    ResilienceSettings,
    RestSourceSettings,
    Settings,
)
from operations.saga import SagaSettings
from operations.service import Operations
from operations.systems import Systems
from resolvers.context import Services
from sources import cursors, rest
from sources.cache import CachePolicy, SourceCache
from sources.crm import CrmSource
from sources.crosswalk import Crosswalk, SqlLinkStore
from sources.erp import ErpSource
from sources.erp_writes import ErpWriter
from sources.partners import LogisticsSource, SupplierSource
from sources.resilience import Resilience, ResiliencePolicy
from sources.sql import SqlTransport, make_engine


def _auth(name: str, settings: RestSourceSettings) -> httpx.Auth | None:
    auth = settings.auth
    if isinstance(auth, OAuth2ClientCredentialsAuth):
        return rest.OAuth2ClientCredentials(name, auth.token_url, auth.client_id,
                                            auth.client_secret.get_secret_value(), auth.scope)
    if isinstance(auth, ApiKeyAuth):
        return rest.ApiKeyAuth(auth.header, auth.key.get_secret_value())
    if isinstance(auth, BasicAuth):
        return httpx.BasicAuth(auth.username, auth.password.get_secret_value())
    return None


def resilience(name: str, settings: ResilienceSettings, timeout_s: float,
               clock: Callable[[], float] = time.monotonic) -> Resilience:
    policy = ResiliencePolicy(**settings.model_dump())
    return Resilience(name, policy, timeout_s, clock=clock)


def rest_transport(name: str, settings: RestSourceSettings, transport: httpx.AsyncBaseTransport | None = None,
                   clock: Callable[[], float] = time.monotonic) -> rest.RestTransport:
    return rest.RestTransport(
        name, settings.base_url, timeout_s=settings.timeout_s, auth=_auth(name, settings),
        max_connections=settings.max_connections, transport=transport,
        max_response_bytes=int(settings.max_response_mb * 1024 * 1024),
        resilience=resilience(name, settings.resilience, settings.timeout_s, clock))


def build_cache(settings: Settings, clock: Callable[[], float] = time.time) -> SourceCache:
    """The source cache on aiocache: memory by default, Redis when `cache.url` is set."""
    config = settings.cache
    backend: BaseCache
    if config.url:
        url = urlparse(config.url)
        backend = RedisCache(serializer=NullSerializer(), endpoint=url.hostname or "127.0.0.1",
                             port=url.port or 6379, db=int((url.path or "/0").lstrip("/") or 0),
                             password=url.password, ssl=url.scheme == "rediss")
    else:
        backend = SimpleMemoryCache(serializer=NullSerializer())
    policies = {name: CachePolicy(p.ttl_s, p.stale_while_revalidate_s, p.stale_if_error_s)
                for name, p in config.effective_policies().items()}
    return SourceCache(backend, policies, version=config.version, clock=clock)


async def build_services(settings: Settings, db: AsyncEngine,
                         transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
                         cache: SourceCache | None = None, clock: Callable[[], float] = time.monotonic) -> Services:
    """Every source with its pooled client. `db` is the gateway's own (migrated) database; `transports`
    lets tests route a REST source in-process."""
    transports = transports or {}
    cache = cache or build_cache(settings)
    secret = settings.server.cursor_secret
    cursors.use_key(secret.get_secret_value().encode() if secret else await shared_key(db, "cursor"))
    sources = settings.sources
    erp = ErpSource(SqlTransport("erp", sources.erp.url, timeout_s=sources.erp.timeout_s,
                                 pool_size=sources.erp.pool_size,
                                 resilience=resilience("erp", sources.erp.resilience, sources.erp.timeout_s, clock)),
                    currency=sources.erp.currency, phone_region=settings.phone_region, cache=cache)
    crm = CrmSource(rest_transport("crm", sources.crm, transports.get("crm"), clock),
                    phone_region=settings.phone_region, cache=cache)
    supplier = SupplierSource(rest_transport("supplier", sources.supplier, transports.get("supplier"), clock),
                              cache=cache)
    logistics = LogisticsSource(rest_transport("logistics", sources.logistics, transports.get("logistics"), clock),
                                cache=cache)
    links = SqlLinkStore(db)
    crosswalk = Crosswalk(crm, erp, links, refresh_seconds=settings.crosswalk.refresh_seconds)
    writer = ErpWriter("erp", sources.erp.url, timeout_s=sources.erp.write_timeout_s,
                       pool_size=sources.erp.write_pool_size, currency=sources.erp.currency)
    entity_operations = {"erp": erp.ENTITY_OPERATIONS, "crm": crm.ENTITY_OPERATIONS,
                         "supplier": supplier.ENTITY_OPERATIONS, "logistics": logistics.ENTITY_OPERATIONS}
    config = settings.operations
    operations = Operations(
        db, Systems(erp=erp, erp_writer=writer, crm=crm, supplier=supplier, logistics=logistics, crosswalk=crosswalk),
        cache, entity_operations, resume_interval_s=config.resume_interval_s,
        outbox_retention_s=config.outbox_retention_s,
        settings=SagaSettings(lease_ms=int(config.lease_s * 1000), inline_attempts=config.inline_attempts,
                              inline_backoff_s=config.inline_backoff_s,
                              step_timeout_s=config.step_timeout_s, retry_base_ms=int(config.retry_base_s * 1000),
                              retry_max_ms=int(config.retry_max_s * 1000), max_attempts=config.max_attempts,
                              wait_s=config.wait_s))
    return Services(erp=erp, crm=crm, supplier=supplier, logistics=logistics, crosswalk=crosswalk,
                    links=links, cache=cache, max_page_size=settings.server.max_page_size,
                    phone_region=settings.phone_region, operations=operations)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Services over a migrated gateway database, closed on exit (for the CLI)."""
    db = make_engine(settings.database_url, pool_size=2)
    try:
        await upgrade(db)
        services = await build_services(settings, db)
        try:
            yield services
        finally:
            await close_services(services)
    finally:
        await db.dispose()


async def close_services(services: Services) -> None:
    if services.operations is not None:
        await services.operations.aclose()
        await services.operations.systems.erp_writer.aclose()
    for source in (services.erp, services.crm, services.supplier, services.logistics):
        await source.aclose()
    await services.cache.aclose()
