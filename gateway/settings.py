"""Typed configuration: a TOML file, overridden by environment variables, validated at start.

Environment variables use the prefix GATEWAY_ and `__` between levels, e.g.
`GATEWAY_SOURCES__CRM__TIMEOUT_S=1.5`. The file is `gateway.toml` in the working directory, or the
path in GATEWAY_CONFIG. docs/configuration.md lists every setting.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from auth.scopes import DEFAULT_ROLES, unknown

DEFAULT_CONFIG_FILE = Path("gateway.toml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OAuth2ClientCredentialsAuth(_Strict):
    kind: Literal["oauth2_client_credentials"]
    token_url: str = "/oauth/token"  # noqa: S105 - a path, not a secret
    client_id: str
    client_secret: SecretStr
    scope: str | None = None


class ApiKeyAuth(_Strict):
    kind: Literal["api_key"]
    header: str = "X-Api-Key"
    key: SecretStr


class BasicAuth(_Strict):
    kind: Literal["basic"]
    username: str
    password: SecretStr


RestAuth = Annotated[OAuth2ClientCredentialsAuth | ApiKeyAuth | BasicAuth, Field(discriminator="kind")]


class ResilienceSettings(_Strict):
    """How the gateway treats one source when it is slow or failing (docs/architecture.md, "Resilience")."""

    retries: int = Field(2, ge=0, le=10, description="extra attempts for idempotent reads")
    backoff_base_s: float = Field(0.05, ge=0, le=10)
    backoff_max_s: float = Field(1.0, ge=0, le=60)
    retry_budget: float = Field(0.2, ge=0, le=1, description="retries may add at most this share of calls")
    breaker_failures: int = Field(5, ge=1, description="failures in a row that open the circuit")
    breaker_error_rate: float = Field(0.5, gt=0, le=1, description="error rate over the window that opens it")
    breaker_window: int = Field(20, ge=2)
    breaker_open_s: float = Field(5.0, gt=0, description="then one probe at a time is let through")
    max_concurrent: int = Field(32, ge=1, le=1000, description="bulkhead: calls in flight at most")


class SqlSourceSettings(_Strict):
    """A SQL source (the ERP)."""

    url: str = "sqlite+aiosqlite:///demo-data/erp.db"
    timeout_s: float = Field(2.0, gt=0, le=120)
    pool_size: int = Field(10, ge=1, le=200)
    currency: str = Field("USD", min_length=3, max_length=3, description="currency of amounts without one")
    write_timeout_s: float = Field(10.0, gt=0, le=120, description=(
        "deadline of one write transaction (business operations), waiting for its locks included"))
    write_pool_size: int = Field(5, ge=1, le=200, description="connections for writes, apart from the reads' pool")
    resilience: ResilienceSettings = ResilienceSettings()

    @field_validator("url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        drivers = ("sqlite+aiosqlite://", "postgresql+asyncpg://", "mysql+aiomysql://", "mariadb+aiomysql://")
        if not url.startswith(drivers):
            raise ValueError(f"must use an async driver URL, one of: {', '.join(drivers)}")
        return url


class RestSourceSettings(_Strict):
    """A REST source (CRM, partner APIs)."""

    base_url: str
    timeout_s: float = Field(2.0, gt=0, le=120)
    max_connections: int = Field(100, ge=1, le=1000)
    max_response_mb: float = Field(16, gt=0, le=512)
    auth: RestAuth | None = None
    resilience: ResilienceSettings = ResilienceSettings()

    @field_validator("base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/")


class SourcesSettings(_Strict):
    erp: SqlSourceSettings = SqlSourceSettings()
    crm: RestSourceSettings = RestSourceSettings(base_url="http://127.0.0.1:8101")
    supplier: RestSourceSettings = RestSourceSettings(base_url="http://127.0.0.1:8102")
    logistics: RestSourceSettings = RestSourceSettings(base_url="http://127.0.0.1:8103")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    graphiql: bool = True
    expose_upstream_calls: bool = Field(
        False, description="add extensions.upstreamCalls to answers to internal users (development and tests)")
    expose_upstream_calls_to_partners: bool = Field(
        False, description="with expose_upstream_calls: to partners too (benchmarks; it names internal systems)")
    max_page_size: int = Field(100, ge=1, le=1000)
    cursor_secret: SecretStr | None = Field(
        None, description="signs the cursors that carry an upstream's page cursor (at least 32 characters); "
        "unset: a random key kept in the gateway's database, shared by every instance using that database")

    @field_validator("cursor_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("cursor_secret must be at least 32 characters")
        return value
    gc_threshold: int = Field(
        50_000, ge=0, description="`gateway serve`: allocations between young-generation garbage collections "
        "(0: Python's default); start-up objects are frozen out of collection either way")
    compress_min_bytes: int = Field(
        1024, ge=0, description="gzip answers of at least this many bytes to clients that accept it (0: never)")


_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")


def _header_names(names: list[str]) -> list[str]:
    """Header names in lower case; `*` and anything that is not a header name are refused."""
    lowered = [name.strip().lower() for name in names]
    for name in lowered:
        if name == "*":
            raise ValueError("'*' is not allowed: list the header names")
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a header name")
    return lowered


class CorsSettings(_Strict):
    """Which browser apps on other origins may call the gateway (docs/security.md, "CORS")."""

    allow_origins: list[str] = Field(default_factory=list, description=(
        "exact origins (scheme://host[:port]) whose pages may call the gateway; empty: CORS off"))
    allow_headers: list[str] = Field(
        default_factory=lambda: ["accept", "authorization", "content-type", "idempotency-key", "x-request-id"],
        description="request headers those pages may send")
    expose_headers: list[str] = Field(
        default_factory=lambda: ["x-request-id", "retry-after", "idempotent-replayed"],
        description="answer headers their scripts may read")
    max_age_s: int = Field(600, ge=0, le=86_400, description="how long a browser may keep a preflight's answer")

    @field_validator("allow_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            _check_origin(origin)
        return origins

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        return _header_names(names)


def _check_origin(origin: str) -> None:
    if origin == "*":
        raise ValueError("'*' is not allowed: credentials travel in the Authorization header, so every origin "
                         "whose pages may send them must be named, e.g. https://app.example.com")
    example = "scheme://host[:port], e.g. https://app.example.com, without a path or trailing slash"
    if "*" in origin:
        raise ValueError(f"{origin!r}: patterns are not supported, list each origin")
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin!r} is not an origin: {example}") from None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query
            or parts.fragment or "@" in parts.netloc):
        raise ValueError(f"{origin!r} is not an origin: {example}")
    if origin != origin.lower():
        raise ValueError(f"{origin!r}: write origins in lower case, as browsers send them")
    if port == {"http": 80, "https": 443}[parts.scheme]:
        raise ValueError(f"{origin!r}: leave out the default port, as browsers do")


class AuthSettings(_Strict):
    """Who may call: internal users by JWT, partners by API token (see `gateway tokens`)."""

    jwt_issuer: str = "gateway"
    jwt_audience: str = "gateway"
    jwt_secret: SecretStr | None = Field(None, description="HS256 shared secret (demo and tests)")
    jwks_url: str | None = Field(None, description="RS256 keys (production identity provider)")
    jwt_leeway_s: float = Field(30, ge=0, le=300)
    roles: dict[str, list[str]] = Field(
        default_factory=lambda: {role: sorted(scopes) for role, scopes in DEFAULT_ROLES.items()},
        description="role -> scopes granted to JWT users with that role")
    allow_anonymous_health: bool = Field(True, description="unauthenticated callers may run the health query")

    @field_validator("roles")
    @classmethod
    def _known_scopes(cls, roles: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, scopes in roles.items():
            if bad := unknown(scopes):
                raise ValueError(f"role {role!r} grants unknown scopes: {', '.join(sorted(bad))}")
        return roles

    @model_validator(mode="after")
    def _one_key_source(self) -> AuthSettings:
        if self.jwt_secret is not None and self.jwks_url is not None:
            raise ValueError("set jwt_secret (HS256) or jwks_url (RS256), not both")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("jwt_secret must be at least 32 characters")
        return self


class LimitSettings(_Strict):
    """Operation limits; every one applies before any upstream call."""

    max_body_bytes: int = Field(256 * 1024, ge=1024, description="larger requests get 413")
    max_depth: int = Field(12, ge=2, le=50, description="deepest field nesting, introspection not included")
    max_introspection_depth: int = Field(15, ge=2, le=50,
                                         description="deepest nesting inside `__schema` and `__type`")
    max_fields: int = Field(500, ge=10, description="fields per operation, fragments expanded")
    max_aliases: int = Field(30, ge=1)
    max_tokens: int = Field(2_000, ge=50)
    max_directives: int = Field(20, ge=0)
    max_root_fields: int = Field(10, ge=1)
    max_cost: int = Field(50_000, ge=10, description="static cost: fields times the page sizes above them")
    rate_per_second: float = Field(20, gt=0, description="per principal, token bucket refill rate")
    rate_burst: int = Field(60, ge=1, description="per principal, token bucket size")
    redis_url: str | None = Field(None, description="share the rate-limit buckets between gateway instances")


class CachePolicySettings(_Strict):
    ttl_s: float = Field(0, ge=0, description="fresh for this long; 0 = not cached")
    stale_while_revalidate_s: float = Field(0, ge=0, description="then served while refreshed in the background")
    stale_if_error_s: float = Field(0, ge=0, description="then served (marked stale) only when the source fails")


def _policy(ttl: float, swr: float = 0, sie: float = 0) -> CachePolicySettings:
    return CachePolicySettings(ttl_s=ttl, stale_while_revalidate_s=swr, stale_if_error_s=sie)


#: Per source operation. Master data changes slowly; stock and open orders quickly; interactions are live.
DEFAULT_CACHE_POLICIES: dict[str, CachePolicySettings] = {
    "erp.customers": _policy(300, 60, 3600),
    "erp.items": _policy(300, 60, 3600),
    "erp.warehouses": _policy(3600, 600, 86400),
    "erp.vendors": _policy(3600, 600, 86400),
    "erp.stock_of_items": _policy(2, 0, 60),
    "erp.stock_of_orders": _policy(2, 0, 60),
    "erp.items_of_orders": _policy(60, 0, 3600),
    "erp.orders": _policy(30, 0, 600),
    "erp.lines_of_orders": _policy(60, 0, 3600),
    "erp.orders_of_customers": _policy(10, 0, 600),
    "erp.order_page": _policy(5, 0, 300),
    "erp.item_page": _policy(60, 0, 600),
    "crm.customers": _policy(300, 60, 3600),
    "crm.customer_page": _policy(60, 0, 600),
    "crm.interactions_of": _policy(0),
    "supplier.offers_for_items": _policy(60, 30, 3600),
    "supplier.purchase_orders": _policy(30, 0, 600),
    "supplier.purchase_orders_for_items": _policy(30, 0, 600),
    "supplier.purchase_order_page": _policy(30, 0, 600),
    "logistics.shipments": _policy(30, 0, 600),
    "logistics.shipments_for_orders": _policy(30, 0, 600),
}


class CacheSettings(_Strict):
    """The source-level cache (docs/architecture.md, "Cache")."""

    enabled: bool = True
    url: str | None = Field(None, description="redis://host:port/db to share the cache; memory when unset")
    version: str = Field("2", description="part of every key: change it to drop everything cached")
    answers: bool = Field(True, description=(
        "also keep whole answers of queries per principal, as long as every record in them is fresh "
        "(docs/architecture.md, \"Answer cache\")"))
    policies: dict[str, CachePolicySettings] = Field(
        default_factory=dict, description="per `source.operation` (or `source.*`), over the defaults")
    webhook_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="per source: the HMAC key of its change notices to /hooks/{source}")
    webhook_max_skew_s: int = Field(300, ge=1, description="notices older (or newer) than this are refused")

    @field_validator("policies")
    @classmethod
    def _names(cls, policies: dict[str, CachePolicySettings]) -> dict[str, CachePolicySettings]:
        for name in policies:
            source, _, operation = name.partition(".")
            if source not in ("erp", "crm", "supplier", "logistics") or not operation:
                raise ValueError(f"{name!r}: policies are named source.operation, e.g. erp.customers or crm.*")
        return policies

    @field_validator("url")
    @classmethod
    def _redis(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return url

    def effective_policies(self) -> dict[str, CachePolicySettings]:
        return {**DEFAULT_CACHE_POLICIES, **self.policies} if self.enabled else {}


class AuditSettings(_Strict):
    """The audit trail (docs/security.md, "Audit")."""

    enabled: bool = True
    url: str | None = Field(None, description="its own database; the gateway's database_url when unset")
    window_ms: float = Field(0.0, ge=0, le=1000, description=(
        "group commit: extra wait before a commit for more records to join (0: commit at once; records "
        "that arrive during a commit go together in the next)"))
    max_batch: int = Field(500, ge=1, le=10_000)
    write_timeout_s: float = Field(15.0, gt=0, le=120, description=(
        "the longest a request waits for its record's commit; then it is answered 503 AUDIT_UNAVAILABLE"))
    on_failure: Literal["fail_closed", "spool"] = Field(
        "fail_closed", description="when the database is down: refuse requests (503), or spool to a file")
    spool_path: Path = Path("demo-data/audit-spool.jsonl")
    variables_key: SecretStr | None = Field(
        None, description="HMAC key for variable hashes; without one each process makes its own")


class ApqSettings(_Strict):
    """Automatic persisted queries for staff clients (docs/security.md, "Automatic persisted queries")."""

    enabled: bool = Field(True, description="staff clients may register query texts by their hash (Apollo's APQ)")
    max_entries: int = Field(10_000, ge=1, le=1_000_000, description="texts kept; the least recently used go first")
    ttl_s: float = Field(86_400, gt=0, le=30 * 86_400, description="a text unused this long is forgotten")
    redis_url: str | None = Field(
        None, description="redis://host:port/db to share the texts between instances; `cache.url` when unset")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return url


class IdempotencySettings(_Strict):
    """Client `Idempotency-Key`s of mutations (docs/configuration.md, "[idempotency]")."""

    ttl_s: float = Field(86_400, gt=0, le=30 * 86_400, description=(
        "how long a mutation's answer is replayed to retries with its key; then the key may be used again"))
    wait_s: float = Field(30, gt=0, le=600, description=(
        "how long a retry waits for the same request still running; then 409 IDEMPOTENCY_KEY_IN_USE"))
    lease_s: float = Field(15, gt=0, le=600, description=(
        "a running request's hold on its key, renewed while it runs; a dead process's key is taken over after it"))


class OperationsSettings(_Strict):
    """Business operations' sagas (docs/configuration.md, "[operations]")."""

    lease_s: float = Field(30, gt=0, le=3_600, description=(
        "a process's hold on a saga it drives, renewed while it runs; a dead process's sagas are resumed after it"))
    inline_attempts: int = Field(3, ge=1, le=10, description=(
        "tries of a step whose failure left its outcome unknown, within the request, before the background takes it"))
    inline_backoff_s: float = Field(0.1, ge=0, le=10, description="first pause between those tries; doubles")
    step_timeout_s: float = Field(30, gt=0, le=600, description="longest one attempt of one step may take")
    retry_base_s: float = Field(1, gt=0, le=3_600, description="first background retry of a waiting step; doubles")
    retry_max_s: float = Field(300, gt=0, le=86_400, description="longest wait between background retries")
    max_attempts: int = Field(20, ge=1, le=10_000, description=(
        "a saga driven this often without finishing is NEEDS_ATTENTION"))
    wait_s: float = Field(30, gt=0, le=600, description=(
        "how long a retried operation waits for its first run, still going in another process"))
    resume_interval_s: float = Field(5, gt=0, le=3_600, description=(
        "how often each gateway process looks for sagas to resume and changes to publish"))
    outbox_retention_s: float = Field(7 * 86_400, gt=0, description=(
        "published changes are kept in the outbox this long (for inspection), then deleted"))


class CrosswalkSettings(_Strict):
    refresh_seconds: float = Field(300, gt=0)


class Settings(BaseSettings):
    """Everything the gateway needs to start."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    database_url: str = Field("sqlite+aiosqlite:///demo-data/gateway.db",
                              description="the gateway's own database (crosswalk links; later tokens, audit)")
    phone_region: str = Field("US", min_length=2, max_length=2,
                              description="region for phone numbers written without a country code")
    server: ServerSettings = ServerSettings()
    sources: SourcesSettings = SourcesSettings()
    crosswalk: CrosswalkSettings = CrosswalkSettings()
    auth: AuthSettings = AuthSettings()
    cache: CacheSettings = CacheSettings()
    audit: AuditSettings = AuditSettings()
    limits: LimitSettings = LimitSettings()
    apq: ApqSettings = ApqSettings()
    cors: CorsSettings = CorsSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    operations: OperationsSettings = OperationsSettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_reading.get())


_reading: ContextVar[Path | None] = ContextVar("gateway_config_file", default=None)


def config_file(given: Path | None = None) -> Path | None:
    """The TOML file to read: the one given, else GATEWAY_CONFIG (it must exist), else ./gateway.toml."""
    named = str(given) if given is not None else os.environ.get("GATEWAY_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"GATEWAY_CONFIG names {path}, which is not a file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


class ConfigError(Exception):
    """Configuration that cannot start a gateway, with a message for a person."""


def load_settings(config: Path | None = None) -> Settings:
    """Read and validate the settings; every problem is reported at once, with the setting's path."""
    token = _reading.set(config_file(config))
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read configuration: {exc}") from None
    finally:
        _reading.reset(token)
