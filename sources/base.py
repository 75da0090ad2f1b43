"""What every source adapter shares: the Source protocol, batch results, and upstream call records."""

from __future__ import annotations

import contextvars
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Health:
    source: str
    ok: bool
    detail: str = ""


class Source(Protocol):
    """An upstream system. Reads are typed batch methods on each adapter; this is their shared part."""

    name: str

    async def health(self) -> Health: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Slice(Generic[R]):
    """One page of records, each with the opaque cursor that resumes after it (sources.cursors)."""

    items: tuple[R, ...]
    cursors: tuple[str, ...]
    has_next: bool

    @classmethod
    def empty(cls) -> Slice[R]:
        return cls((), (), False)


# --- upstream call records --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SourceCall:
    """One call to an upstream system: what, how it ended, how long it took."""

    source: str
    operation: str
    status: str  # "ok" or an error code
    ms: float
    keys: int = 0
    cache: str = "none"  # none | hit | miss | stale
    ended: float = field(default_factory=time.perf_counter)  # perf_counter() when the call ended


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """An answer served from the cache past its TTL: `stale` (refreshing) or `stale_if_error`."""

    source: str
    operation: str
    outcome: str
    keys: int
    age_s: float


@dataclass
class CallLog:
    """The upstream calls made on behalf of one request, and the stale answers it was given."""

    calls: list[SourceCall] = field(default_factory=list)
    cache: list[CacheEvent] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)  # perf_counter() when the request began
    #: (source, operation) -> age in seconds of the oldest record the request used from it (inf: uncached).
    touched: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Set by resolvers whose answers must never be reused (the audit trail, say).
    uncacheable: bool = False

    def start_ms(self, call: SourceCall) -> float:
        """When `call` started, in ms since the request began (the waterfall of a request's calls)."""
        return (call.ended - call.ms / 1000 - self.started) * 1000

    def upstream_ms(self) -> float:
        """Wall time with at least one upstream call in flight: the floor under the request's latency."""
        total, covered_to = 0.0, float("-inf")
        for start, end in sorted((c.ended - c.ms / 1000, c.ended) for c in self.calls):
            if end > covered_to:  # count only the part no earlier call already covered
                total += end - max(start, covered_to)
                covered_to = end
        return total * 1000

    def stale_sources(self) -> dict[str, float]:
        """Source -> age in seconds of the oldest stale answer served from it."""
        ages: dict[str, float] = {}
        for event in self.cache:
            ages[event.source] = max(ages.get(event.source, 0.0), event.age_s)
        return ages

    def count(self, source: str | None = None) -> int:
        return sum(1 for c in self.calls if source is None or c.source == source)


_current: contextvars.ContextVar[CallLog | None] = contextvars.ContextVar("gateway_call_log", default=None)

#: Calls per (source, operation, status) since start, for metrics.
CALL_COUNTS: Counter[tuple[str, str, str]] = Counter()


@contextmanager
def recording(log: CallLog) -> Iterator[CallLog]:
    """Record every upstream call made inside this block (and tasks it starts) into `log`."""
    token = _current.set(log)
    try:
        yield log
    finally:
        _current.reset(token)


def record_call(call: SourceCall) -> None:
    CALL_COUNTS[(call.source, call.operation, call.status)] += 1
    log = _current.get()
    if log is not None:
        log.calls.append(call)


def record_cache_event(source: str, operation: str, outcome: str, keys: int, age_s: float) -> None:
    log = _current.get()
    if log is not None:
        log.cache.append(CacheEvent(source, operation, outcome, keys, age_s))


def record_touch(source: str, operation: str, age_s: float) -> None:
    """The request used records of this operation, the oldest `age_s` old (math.inf: never cached)."""
    log = _current.get()
    if log is not None:
        key = (source, operation)
        log.touched[key] = max(age_s, log.touched.get(key, 0.0))


def ms_since(started: float) -> float:
    """Milliseconds elapsed since a `time.perf_counter()` reading."""
    return (time.perf_counter() - started) * 1000
