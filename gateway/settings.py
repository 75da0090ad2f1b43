"""Typed configuration: a TOML file, overridden by environment variables, validated at start.

Environment variables use the prefix GATEWAY_ and `__` between levels, e.g.
`GATEWAY_SOURCES__CRM__TIMEOUT_S=1.5`. The file is `gateway.toml` in the working directory, or the
path in GATEWAY_CONFIG. docs/configuration.md lists every setting.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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


class SqlSourceSettings(_Strict):
    """A SQL source (the ERP)."""

    url: str = "sqlite+aiosqlite:///demo-data/erp.db"
    timeout_s: float = Field(2.0, gt=0, le=120)
    pool_size: int = Field(10, ge=1, le=200)
    currency: str = Field("USD", min_length=3, max_length=3, description="currency of amounts without one")

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
        False, description="add extensions.upstreamCalls to every answer (for development and tests)")
    max_page_size: int = Field(100, ge=1, le=1000)


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
