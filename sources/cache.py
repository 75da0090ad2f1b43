"""A cache of raw upstream records, per source operation and key, on aiocache (memory or Redis).

What is cached is what a source answered (rows, JSON), before mapping and long before any
authorization: resolvers filter by principal above the cache, and row filters that reach the source
(a partner's supplier code) are part of the arguments, hence of the key. Keys are SHA-256 of canonical
JSON: cache version, source, operation, generation, key and arguments. Values are serialised, so no
caller can change another's copy. Failures are never cached.

Per operation, a policy gives a TTL, a stale-while-revalidate window (serve the old value, refresh in
the background) and a stale-if-error window (serve the old value when the source fails). Concurrent
misses for the same key wait for one upstream call (singleflight). Invalidation deletes keys, or
bumps the operation's generation, which lives in the backend so every instance sharing it sees it.
A read that was under way during an invalidation never stores what it fetched: a value is stored only
if its operation's generation and its key's invalidation stamp are what they were when the read began
(checked and stored in one step on Redis), and a read that began after an invalidation never waits for
the answer of a fetch that began before it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import structlog
from aiocache.backends.redis import RedisBackend
from aiocache.base import BaseCache
from redis.exceptions import RedisError

from sources.base import record_cache_event, record_touch
from sources.errors import SourceError
from sources.tasks import watch

K = TypeVar("K", bound=Hashable)
Fetch = Callable[[list[K]], Awaitable[Mapping[K, Any]]]

log = structlog.get_logger("sources.cache")

#: (source, outcome) -> count since start; outcome is hit, miss, stale, stale_if_error or invalidation.
CACHE_COUNTS: Counter[tuple[str, str]] = Counter()


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl_s: float = 0.0
    stale_while_revalidate_s: float = 0.0
    stale_if_error_s: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    @property
    def keep_s(self) -> float:
        """How long the backend keeps an entry: as long as any window may still use it."""
        return self.ttl_s + max(self.stale_while_revalidate_s, self.stale_if_error_s)


NO_CACHE = CachePolicy()

#: What a cache backend may raise when it is unreachable or slow (Redis: RedisError, OSError, timeouts).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


#: How long a key's invalidation stamp is kept: longer than any read under way could last (reads are
#: bounded by their source's deadline, seconds), so no read that began before it can miss it.
STAMP_KEEP_S = 3600

# Stores the entries whose key was not invalidated since the read began, if the operation's generation
# has not moved either; all in one step, so no invalidation can fall between the check and the store.
# KEYS: generation, then (entry, stamp) pairs; ARGV: generation read, TTL, then (stamp read, value) pairs.
_STORE_IF_CURRENT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
local stored = 0
for i = 2, #KEYS, 2 do
  if tonumber(redis.call('GET', KEYS[i + 1]) or '0') == tonumber(ARGV[i + 1]) then
    redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ARGV[2])
    stored = stored + 1
  end
end
return stored
"""


@dataclass(frozen=True, slots=True)
class _Read:
    """What a read saw when it began: its operation's generation, and each key's invalidation stamp."""

    generation_key: str
    generation: int
    stamps: Mapping[str, int]  # cache key -> stamp


def _count(value: Any) -> int:
    return int(value) if value is not None else 0


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


class SourceCache:
    def __init__(self, backend: BaseCache, policies: Mapping[str, CachePolicy], *, version: str = "1",
                 clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.policies = dict(policies)
        self.version = version
        self.clock = clock
        # Fetches under way, by cache key, with the key's stamp when their read began.
        self._inflight: dict[str, tuple[asyncio.Future[Any], int]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._store_script: Any = (backend.client.register_script(_STORE_IF_CURRENT)
                                   if isinstance(backend, RedisBackend) else None)

    def policy(self, source: str, operation: str) -> CachePolicy:
        return self.policies.get(f"{source}.{operation}") or self.policies.get(f"{source}.*") or NO_CACHE

    def _key(self, source: str, operation: str, generation: int, key: Any, args: Any) -> str:
        digest = hashlib.sha256(_canonical([self.version, source, operation, generation, key, args])).hexdigest()
        return f"gw:c:{digest}"

    @staticmethod
    def _stamp_key(cache_key: str) -> str:
        """Counts the invalidations of one cache key."""
        return "gw:k:" + cache_key.removeprefix("gw:c:")

    @staticmethod
    def _generation_key(source: str, operation: str) -> str:
        return f"gw:g:{source}.{operation}"

    async def _generation(self, source: str, operation: str) -> int:
        value = await self.backend.get(self._generation_key(source, operation))
        return int(value) if value is not None else 0

    async def one(self, source: str, operation: str, args: Any, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """A single cached answer (a page), keyed by its arguments."""

        async def fetch_one(_: list[str]) -> Mapping[str, Any]:
            return {"": await fetch()}

        return (await self.many(source, operation, [""], args, fetch_one))[""]

    async def many(self, source: str, operation: str, keys: Sequence[K], args: Any, fetch: Fetch[K]) -> dict[K, Any]:
        """Raw values for `keys`: from the cache where fresh enough, else one upstream call for the rest."""
        policy = self.policy(source, operation)
        if not policy.enabled or not keys:
            record_touch(source, operation, 0.0 if policy.enabled else math.inf)
            return dict(await fetch(list(keys)))
        try:
            generation = await self._generation(source, operation)
            cache_keys = {k: self._key(source, operation, generation, k, args) for k in keys}
            names = list(cache_keys.values())
            found = await self.backend.multi_get(names + [self._stamp_key(n) for n in names])
        except BACKEND_ERRORS as exc:
            # The cache is an optimisation: when its backend fails, answer from the source.
            CACHE_COUNTS[(source, "backend_error")] += 1
            log.warning("cache_unavailable", source=source, error=str(exc))
            record_touch(source, operation, 0.0)
            return dict(await fetch(list(keys)))
        entries = found[:len(names)]
        read = _Read(self._generation_key(source, operation), generation,
                     {n: _count(stamp) for n, stamp in zip(names, found[len(names):], strict=True)})
        now = self.clock()
        out: dict[K, Any] = {}
        missing: list[K] = []
        revalidate: list[K] = []
        fallback: dict[K, tuple[Any, float]] = {}
        stale_age = 0.0
        fresh_age = 0.0
        for k, entry in zip(keys, entries, strict=True):
            if entry is None:
                missing.append(k)
                continue
            stored = orjson.loads(entry)
            age = now - stored["t"]
            if age <= policy.ttl_s:
                out[k] = stored["v"]
                fresh_age = max(fresh_age, age)
            elif age <= policy.ttl_s + policy.stale_while_revalidate_s:
                out[k] = stored["v"]
                revalidate.append(k)
                stale_age = max(stale_age, age)
            else:
                if age <= policy.ttl_s + policy.stale_if_error_s:
                    fallback[k] = (stored["v"], age)
                missing.append(k)
        record_touch(source, operation, fresh_age)
        hits = len(keys) - len(missing) - len(revalidate)
        if hits:
            CACHE_COUNTS[(source, "hit")] += hits
        if revalidate:
            CACHE_COUNTS[(source, "stale")] += len(revalidate)
            record_cache_event(source, operation, "stale", len(revalidate), stale_age)
            self._refresh_later(source, operation, revalidate, fetch, cache_keys, policy, read)
        if missing:
            CACHE_COUNTS[(source, "miss")] += len(missing)
            try:
                out.update(await self._fetch_once(missing, fetch, cache_keys, policy, read))
            except SourceError:
                if not all(k in fallback for k in missing):
                    raise
                oldest = max(age for _, age in fallback.values())
                CACHE_COUNTS[(source, "stale_if_error")] += len(missing)
                record_cache_event(source, operation, "stale_if_error", len(missing), oldest)
                log.warning("served_stale_on_error", source=source, operation=operation, age_s=round(oldest, 1))
                out.update({k: fallback[k][0] for k in missing})
        return out

    async def _fetch_once(self, keys: list[K], fetch: Fetch[K], cache_keys: Mapping[K, str],
                          policy: CachePolicy, read: _Read) -> dict[K, Any]:
        """Fetch `keys`, sharing calls already under way for any of them (singleflight).

        A call is shared only with reads that saw the same invalidation stamp: one that began before
        an invalidation of its key may answer with what the invalidation was about to drop."""
        loop = asyncio.get_running_loop()
        theirs: dict[K, asyncio.Future[Any]] = {}
        for k in keys:
            under_way = self._inflight.get(cache_keys[k])
            if under_way is not None and under_way[1] == read.stamps[cache_keys[k]]:
                theirs[k] = under_way[0]
        mine = [k for k in keys if k not in theirs]
        futures = {k: loop.create_future() for k in mine}
        for k, future in futures.items():
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # a failure is never "unretrieved"
            self._inflight[cache_keys[k]] = (future, read.stamps[cache_keys[k]])
        out: dict[K, Any] = {}
        try:
            if mine:
                fetched = await fetch(mine)
                stored_at = self.clock()
                await self._store(fetched, cache_keys, stored_at, policy, read)
                for k in mine:
                    futures[k].set_result(fetched.get(k))
                out.update({k: v for k, v in fetched.items() if k in futures})
        except BaseException as exc:
            for future in futures.values():
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            for k, future in futures.items():
                if self._inflight.get(cache_keys[k], (None, 0))[0] is future:
                    del self._inflight[cache_keys[k]]
        for k, future in theirs.items():
            value = await future
            if value is not None:
                out[k] = value
        return out

    async def _store(self, fetched: Mapping[K, Any], cache_keys: Mapping[K, str], stored_at: float,
                     policy: CachePolicy, read: _Read) -> None:
        pairs = []
        for k, v in fetched.items():
            if k not in cache_keys:
                continue
            try:
                pairs.append((cache_keys[k], orjson.dumps({"t": stored_at, "v": v})))
            except TypeError as exc:  # a value JSON cannot carry is served, just not cached
                log.warning("cache_unserialisable", error=str(exc))
        if pairs:
            try:
                await self._store_if_current(pairs, max(1, int(policy.keep_s + 1)), read)
            except BACKEND_ERRORS as exc:
                log.warning("cache_store_failed", error=str(exc))

    async def _store_if_current(self, pairs: list[tuple[str, bytes]], ttl: int, read: _Read) -> None:
        """Store the entries no invalidation has touched since `read` began; drop the others."""
        if self._store_script is not None:
            build = self.backend._build_key  # the backend's own key naming, as its other calls use it
            keys = [build(read.generation_key)]
            argv: list[Any] = [read.generation, ttl]
            for name, value in pairs:
                keys += [build(name), build(self._stamp_key(name))]
                argv += [read.stamps[name], value]
            await self._store_script(keys=keys, args=argv)
            return
        # In memory nothing else runs between this check and the store: neither awaits anything real.
        current = await self.backend.multi_get([read.generation_key] + [self._stamp_key(n) for n, _ in pairs])
        if _count(current[0]) != read.generation:
            return
        unchanged = [(n, v) for (n, v), stamp in zip(pairs, current[1:], strict=True)
                     if _count(stamp) == read.stamps[n]]
        if unchanged:
            await self.backend.multi_set(unchanged, ttl=ttl)

    def _refresh_later(self, source: str, operation: str, keys: list[K], fetch: Fetch[K],
                       cache_keys: Mapping[K, str], policy: CachePolicy, read: _Read) -> None:
        async def refresh() -> None:
            try:
                await self._fetch_once(keys, fetch, cache_keys, policy, read)
            except SourceError as exc:
                log.info("revalidation_failed", source=source, operation=operation, code=exc.code)

        # A fresh context: the refresh belongs to no request and must not land in one's call log.
        task = asyncio.get_running_loop().create_task(refresh(), name="cache-refresh", context=contextvars.Context())
        watch(task, "cache_refresh_failed", source=source, operation=operation)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def invalidate(self, source: str, operation: str, keys: Sequence[Any] | None = None) -> None:
        """Forget cached answers: of `keys` (for operations without arguments), else all of the operation.

        Whole GraphQL answers built from the operation (gateway.answers) are dropped too, whatever the keys.
        """
        if keys:
            generation = await self._generation(source, operation)
            names = [self._key(source, operation, generation, k, None) for k in keys]
            # The stamp first: a read under way from now on will not store what it fetched.
            await asyncio.gather(*(self._stamp(n) for n in names))
            await asyncio.gather(*(self.backend.delete(n) for n in names))
        else:
            await self.backend.increment(self._generation_key(source, operation))
        await self.backend.increment(self._answers_key(source, operation))
        CACHE_COUNTS[(source, "invalidation")] += 1

    async def _stamp(self, cache_key: str) -> None:
        stamp = self._stamp_key(cache_key)
        await self.backend.increment(stamp)
        await self.backend.expire(stamp, STAMP_KEEP_S)

    @staticmethod
    def _answers_key(source: str, operation: str) -> str:
        return f"gw:a:{source}.{operation}"

    async def answer_generations(self, operations: Sequence[tuple[str, str]]) -> list[int]:
        """Per operation, how often it was invalidated (in the backend, so shared between instances)."""
        if not operations:
            return []
        values = await self.backend.multi_get([self._answers_key(s, o) for s, o in operations])
        return [int(v) if v is not None else 0 for v in values]

    def fresh_for(self, touched: Mapping[tuple[str, str], float]) -> float:
        """How much longer every record in `touched` stays fresh (0 or less: not at all)."""
        if not touched:
            return 0.0
        return min(self.policy(s, o).ttl_s - age for (s, o), age in touched.items())

    async def drain(self) -> None:
        """Wait for the background refreshes under way (tests, and shutdown without losing them)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self.backend.close()


class NoCache:
    """The cache's interface with nothing cached (sources built without a cache)."""

    async def many(self, source: str, operation: str, keys: Sequence[K], args: Any, fetch: Fetch[K]) -> dict[K, Any]:
        return dict(await fetch(list(keys)))

    async def one(self, source: str, operation: str, args: Any, fetch: Callable[[], Awaitable[Any]]) -> Any:
        return await fetch()

    async def invalidate(self, source: str, operation: str, keys: Sequence[Any] | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None


#: What adapters hold: a real cache or none.
Cache = SourceCache | NoCache
