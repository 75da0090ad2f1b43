"""Keys the gateway makes for itself, kept in its own database so that every instance shares them."""

from __future__ import annotations

import datetime
import secrets

from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

_keys = Table("gateway_keys", MetaData(), Column("name", String(64), primary_key=True),
              Column("value", String(128), nullable=False), Column("created_at", DateTime(timezone=True)))


async def _stored(engine: AsyncEngine, name: str) -> str | None:
    async with engine.connect() as conn:
        found: str | None = (await conn.execute(select(_keys.c.value).where(_keys.c.name == name))).scalar_one_or_none()
    return found


async def shared_key(engine: AsyncEngine, name: str, size: int = 32) -> bytes:
    """The key called `name`: made at random by the first instance that asks, read by every later one."""
    found = await _stored(engine, name)
    if found is None:
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(_keys).values(name=name, value=secrets.token_hex(size),
                                                        created_at=datetime.datetime.now(datetime.UTC)))
        except IntegrityError:
            pass  # another instance made it first: read theirs
        found = await _stored(engine, name)
        if found is None:
            raise RuntimeError(f"the gateway key {name!r} was neither stored nor found")
    return bytes.fromhex(found)
