"""Automatic persisted queries (Apollo's APQ): query texts that staff clients registered by sending them.

A client sends only `extensions.persistedQuery.sha256Hash`; on a miss it sends the hash with the text,
which is then kept here under `sha256:<hex>`. Unlike trusted documents (gateway.documents) nobody
reviewed these texts, so only internal principals ever run them, and every run is parsed, validated
and limited like a query sent in full.

The store is bounded twice: at most `apq.max_entries` texts, the least recently used going first, and
an entry unused for `apq.ttl_s` is forgotten. In memory per process by default; in Redis, shared by
every instance, when a Redis URL is configured. The Redis store keeps the texts in one hash and their
last use in one sorted set, changed together by scripts, so the bound holds across instances (a plain
key-value cache such as aiocache's can expire entries but cannot count them).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.documents import PREFIX
from gateway.settings import Settings

log = structlog.get_logger("gateway.apq")


class ApqStore(Protocol):
    """Registered query texts by id (`sha256:<hex>` of the text)."""

    async def get(self, doc_id: str) -> str | None:
        """The text registered under `doc_id`, or None (never registered, evicted, expired)."""
        ...

    async def put(self, doc_id: str, text: str) -> None:
        """Keep `text` under `doc_id`; the caller has checked that the id is the text's hash."""
        ...

    async def aclose(self) -> None: ...


def _is_hash_of(doc_id: str, text: str) -> bool:
    return doc_id == PREFIX + hashlib.sha256(text.encode()).hexdigest()


class MemoryApqStore:
    """Texts in this process: least recently used first out, idle entries expire."""

    def __init__(self, max_entries: int, ttl_s: float, max_text_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.max_text_bytes = max_text_bytes
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()  # id -> (last use, text)

    async def get(self, doc_id: str) -> str | None:
        entry = self._entries.get(doc_id)
        if entry is None:
            return None
        now = self.clock()
        if now - entry[0] > self.ttl_s:
            del self._entries[doc_id]
            return None
        self._entries[doc_id] = (now, entry[1])
        self._entries.move_to_end(doc_id)
        return entry[1]

    async def put(self, doc_id: str, text: str) -> None:
        if len(text.encode()) > self.max_text_bytes:
            return
        now = self.clock()
        self._entries[doc_id] = (now, text)
        self._entries.move_to_end(doc_id)
        while self._entries:  # the oldest end: idle ones past their time, then whatever exceeds the bound
            oldest, (used, _) = next(iter(self._entries.items()))
            if len(self._entries) <= self.max_entries and now - used <= self.ttl_s:
                break
            del self._entries[oldest]

    async def aclose(self) -> None:
        return None


# KEYS[1]: hash id -> text, KEYS[2]: sorted set id -> last use (ms, the server's clock, shared by all
# instances). ARGV: id, ttl ms. A hit counts as a use; an idle entry is removed when met.
_GET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local used = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not used then return false end
if tonumber(used) < now - ttl then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
  return false
end
local text = redis.call('HGET', KEYS[1], ARGV[1])
if not text then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return text
"""

# ARGV: id, text, ttl ms, max entries. Adds the entry, then drops idle ones and the least recently used
# beyond the bound (at most 1,000 of each per call, so one call stays short after the bound is lowered).
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local idle = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl - 1, 'LIMIT', 0, 1000)
if #idle > 0 then
  redis.call('HDEL', KEYS[1], unpack(idle))
  redis.call('ZREM', KEYS[2], unpack(idle))
end
local over = math.min(redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4]), 1000)
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('HDEL', KEYS[1], unpack(oldest))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return over
"""


class RedisApqStore:
    """Texts shared by every gateway instance on the same Redis database.

    Redis trouble never fails a request: a lookup that fails is a miss (the client sends the text
    again), a registration that fails is skipped; both are logged.
    """

    def __init__(self, url: str, max_entries: int, ttl_s: float, max_text_bytes: int,
                 prefix: str = "gw:apq:") -> None:
        self.redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.max_entries = max_entries
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.max_text_bytes = max_text_bytes
        # One hash tag: both keys live in the same slot, as scripts need under Redis Cluster.
        self.keys = [prefix + "{store}:texts", prefix + "{store}:used"]
        self._get = self.redis.register_script(_GET)
        self._put = self.redis.register_script(_PUT)

    async def get(self, doc_id: str) -> str | None:
        try:
            raw = await self._get(keys=self.keys, args=[doc_id, self.ttl_ms])
        except (RedisError, OSError) as exc:
            log.warning("apq_store_unavailable", operation="get", error=str(exc))
            return None
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        # Whoever can write to Redis could plant a text under another's id: run only what the id names.
        return text if _is_hash_of(doc_id, text) else None

    async def put(self, doc_id: str, text: str) -> None:
        if len(text.encode()) > self.max_text_bytes:
            return
        try:
            await self._put(keys=self.keys, args=[doc_id, text, self.ttl_ms, self.max_entries])
        except (RedisError, OSError) as exc:
            log.warning("apq_store_unavailable", operation="put", error=str(exc))

    async def aclose(self) -> None:
        await self.redis.aclose()


def build_apq_store(settings: Settings) -> ApqStore | None:
    """The store for these settings: None when APQ is off, Redis when a URL is set, else memory."""
    config = settings.apq
    if not config.enabled:
        return None
    # No text longer than a request may be is ever sent, so none is kept either.
    max_text_bytes = settings.limits.max_body_bytes
    url = config.redis_url or settings.cache.url
    if url:
        return RedisApqStore(url, config.max_entries, config.ttl_s, max_text_bytes)
    return MemoryApqStore(config.max_entries, config.ttl_s, max_text_bytes)
