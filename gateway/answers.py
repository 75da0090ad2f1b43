"""Whole GraphQL answers, cached: the same query, with the same variables, from the same principal.

The source cache (sources.cache) keeps raw records and still executes the operation every time; for a
query asked again and again (a dashboard's customer 360), executing is most of the cost. This cache
keeps the answer's `data` and hands it back without executing anything, under these rules:

- **Who.** The key holds the principal (kind, subject, partner, scopes) next to the document,
  operation name and variables: an answer is only ever reused for the principal it was computed for,
  so field scopes and partner row rules are as they were when it was made.
- **Fresh as its sources.** While executing, every source operation a request reads from records how old
  its oldest record was (sources.base.record_touch). The answer lives as long as all of them stay fresh
  under their cache policies; an operation without a policy (CRM interactions by default), an answer
  served stale, an error, a mutation, a resolver that marks itself uncacheable (the audit trail) or an
  answer delivered in parts (`@defer`, `@stream`: gateway.http never offers one) means it is not kept.
- **Invalidated with its sources.** Each answer remembers, per operation it read, how often that
  operation had been invalidated; a webhook or a write through the gateway bumps that count (in the
  cache backend, so every instance sharing it sees it) and the answer is not served again.

Hits are still authenticated, rate limited and audited like every other request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import structlog
from graphql import DocumentNode, parse

from auth.principal import Principal
from sources.base import CallLog
from sources.cache import BACKEND_ERRORS, SourceCache

log = structlog.get_logger("gateway.answers")


@lru_cache(maxsize=1_000)
def parsed(query: str) -> DocumentNode:
    """The document of a query answered from the cache (for its audit record): parsed once per text."""
    return parse(query)


@dataclass(frozen=True, slots=True)
class Answer:
    data: bytes  # the JSON of `data`, as it was sent the first time
    age_s: float


class AnswerCache:
    def __init__(self, sources: SourceCache, *, clock: Callable[[], float] = time.time,
                 max_bytes: int = 1_000_000) -> None:
        self.sources = sources
        self.backend = sources.backend
        self.clock = clock
        self.max_bytes = max_bytes
        #: Every operation with a cache policy: what an answer can be built from.
        self.operations = [(s, o) for s, _, o in (name.partition(".") for name in sources.policies) if o != "*"]

    def key(self, principal: Principal, document: str, operation_name: str | None, variables: Any) -> str:
        # Who may see what is the subject, its partner and its scopes; a refreshed JWT (new jti) still hits.
        who = [principal.kind.value, principal.subject, principal.partner_id, sorted(principal.scopes)]
        raw = orjson.dumps([self.sources.version, who, document, operation_name, variables],
                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        return "gw:r:" + hashlib.sha256(raw).hexdigest()

    async def get(self, key: str) -> Answer | None:
        try:
            entry = await self.backend.get(key)
            if entry is None:
                return None
            raw = entry.encode() if isinstance(entry, str) else bytes(entry)  # Redis hands back text
            head, _, data = raw.partition(b"\n")
            meta = orjson.loads(head)
            age = self.clock() - meta["t"]
            operations = [(s, o) for s, o, _ in meta["deps"]]
            generations = await self.sources.answer_generations(operations)
        except BACKEND_ERRORS as exc:
            log.warning("answer_cache_unavailable", error=str(exc))
            return None
        if age > meta["ttl"] or generations != [g for _, _, g in meta["deps"]]:
            return None
        return Answer(data, age)

    async def snapshot(self) -> dict[tuple[str, str], int]:
        """The invalidation counts of every cached operation, taken before executing: an invalidation
        that lands while the answer is being computed then keeps that answer from being served."""
        try:
            return dict(zip(self.operations, await self.sources.answer_generations(self.operations), strict=True))
        except BACKEND_ERRORS as exc:
            log.warning("answer_cache_unavailable", error=str(exc))
            return {}

    async def put(self, key: str, calls: CallLog, data: bytes, snapshot: dict[tuple[str, str], int]) -> bool:
        """Keep `data` as the answer for `key` if every source it came from allows; whether it was kept."""
        if calls.uncacheable or calls.cache or not calls.touched or len(data) > self.max_bytes:
            return False
        ttl = self.sources.fresh_for(calls.touched)
        if ttl < 0.5 or not all(op in snapshot for op in calls.touched):
            return False
        deps = [[s, o, snapshot[(s, o)]] for s, o in sorted(calls.touched)]
        try:
            head = orjson.dumps({"t": self.clock(), "ttl": ttl, "deps": deps})
            await self.backend.set(key, head + b"\n" + data, ttl=max(1, int(ttl + 1)))
        except BACKEND_ERRORS as exc:
            log.warning("answer_store_failed", error=str(exc))
            return False
        return True
