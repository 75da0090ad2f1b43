"""Per-principal rate limiting: a token bucket per principal, in memory or shared through Redis."""

from __future__ import annotations

import time
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from auth.principal import Principal, PrincipalKind

log = structlog.get_logger("auth.ratelimit")


class RateLimiter(Protocol):
    async def take(self, key: str) -> float:
        """0 when a request may pass now, else the seconds until one may."""
        ...

    async def aclose(self) -> None: ...


def bucket_key(principal: Principal, client_ip: str) -> str:
    """Partners per token, users per subject, anonymous callers per address."""
    if principal.kind is PrincipalKind.ANONYMOUS:
        return f"anon:{client_ip}"
    if principal.kind is PrincipalKind.PARTNER:
        return f"token:{principal.token_id}"
    return f"{principal.kind.value}:{principal.subject}"


class MemoryRateLimiter:
    """Buckets in this process (one gateway instance)."""

    def __init__(self, rate_per_second: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate_per_second
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()  # bounded memory; a full reset only ever errs on the generous side
        self._buckets[key] = (tokens, now)
        return wait

    async def aclose(self) -> None:
        return None


# Atomic in Redis: refill by elapsed time (the server's clock, shared by all instances), then take one.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets shared by every gateway instance that uses the same Redis."""

    def __init__(self, url: str, rate_per_second: float, burst: int, prefix: str = "gw:rl:") -> None:
        self.redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.rate = rate_per_second
        self.burst = burst
        self.prefix = prefix
        self._script = self.redis.register_script(_TAKE)

    async def take(self, key: str) -> float:
        try:
            wait = await self._script(keys=[self.prefix + key], args=[self.rate, self.burst])
        except (RedisError, OSError) as exc:
            # Failing open keeps the API up when Redis is down; the log says so.
            log.warning("rate_limit_unavailable", error=str(exc))
            return 0.0
        return float(wait)

    async def aclose(self) -> None:
        await self.redis.aclose()
