"""Partner API tokens: minted once, stored only as a SHA-256 hash, scoped, bound to a partner, revocable.

A token reads `gwp_<random>`. The gateway keeps its hash, a short prefix (to recognise it in lists and
logs), the partner it belongs to, its scopes, and when it was created, last used, expires and was
revoked. Every request looks the hash up afresh, so a revocation holds from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.principal import AuthError, Principal, PrincipalKind
from auth.scopes import PARTNER_SCOPES

TOKEN_PREFIX = "gwp_"  # noqa: S105 - a marker, not a secret
_LAST_USED_EVERY = timedelta(minutes=1)  # bound the writes a busy token causes


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    prefix: str
    name: str
    partner_id: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore(Protocol):
    async def create(self, *, name: str, partner_id: str, scopes: frozenset[str],
                     expires_at: datetime | None) -> tuple[str, ApiToken]: ...

    async def find(self, token_hash: str) -> tuple[str, ApiToken] | None: ...

    async def list(self, partner_id: str | None = None) -> list[ApiToken]: ...

    async def revoke(self, token_id: str) -> bool: ...

    async def touch(self, token_id: str, when: datetime) -> None: ...


metadata = MetaData()
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("partner_id", String(16), nullable=False),
    Column("scopes", String(500), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return None if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class SqlTokenStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, *, name: str, partner_id: str, scopes: frozenset[str],
                     expires_at: datetime | None) -> tuple[str, ApiToken]:
        """Mint a token. The plain token is returned here once and never stored."""
        bad = scopes - PARTNER_SCOPES
        if bad:
            raise ValueError(f"partner tokens cannot carry: {', '.join(sorted(bad))}")
        if not scopes:
            raise ValueError("a token needs at least one scope")
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(id=secrets.token_hex(8), prefix=plain[:10], name=name, partner_id=partner_id,
                          scopes=scopes, created_at=datetime.now(UTC), expires_at=expires_at, last_used_at=None,
                          revoked_at=None)
        async with self.engine.begin() as conn:
            await conn.execute(insert(api_tokens).values(
                id=record.id, prefix=record.prefix, token_hash=token_hash(plain), name=name, partner_id=partner_id,
                scopes=" ".join(sorted(scopes)), created_at=record.created_at, expires_at=expires_at))
        return plain, record

    async def find(self, digest: str) -> tuple[str, ApiToken] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_tokens).where(api_tokens.c.token_hash == digest))).first()
        return None if row is None else (str(row.token_hash), self._record(row))

    async def list(self, partner_id: str | None = None) -> list[ApiToken]:
        stmt = select(api_tokens).order_by(api_tokens.c.created_at)
        if partner_id is not None:
            stmt = stmt.where(api_tokens.c.partner_id == partner_id)
        async with self.engine.connect() as conn:
            return [self._record(r) for r in await conn.execute(stmt)]

    async def revoke(self, token_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(update(api_tokens).where(
                api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC)))
            return bool(result.rowcount)

    async def touch(self, token_id: str, when: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=when))

    @staticmethod
    def _record(row: object) -> ApiToken:
        r = row._mapping  # type: ignore[attr-defined]
        return ApiToken(id=r["id"], prefix=r["prefix"], name=r["name"], partner_id=r["partner_id"],
                        scopes=frozenset(r["scopes"].split()), created_at=_utc(r["created_at"]) or datetime.now(UTC),
                        expires_at=_utc(r["expires_at"]), last_used_at=_utc(r["last_used_at"]),
                        revoked_at=_utc(r["revoked_at"]))


class TokenAuthenticator:
    """Partner tokens to principals. Unknown, revoked and expired tokens fail alike."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def authenticate(self, token: str) -> Principal:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            raise AuthError("not a partner token")
        digest = token_hash(token)
        found = await self.store.find(digest)
        now = datetime.now(UTC)
        # compare_digest keeps the final comparison constant-time, whatever the lookup did.
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthError("unknown token")
        record = found[1]
        if not record.usable(now):
            raise AuthError(f"token {record.id} revoked or expired")
        if record.last_used_at is None or now - record.last_used_at > _LAST_USED_EVERY:
            await self.store.touch(record.id, now)
        return Principal(subject=f"partner:{record.partner_id}:{record.name}", kind=PrincipalKind.PARTNER,
                         scopes=record.scopes & PARTNER_SCOPES, partner_id=record.partner_id, token_id=record.id)
