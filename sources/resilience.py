"""Per-source resilience: a deadline, retries for idempotent reads, a retry budget, a circuit breaker
and a bulkhead. Every attempt is an upstream call of its own, recorded and counted.

- **Deadline.** One deadline (the source's `timeout_s`) covers all attempts of a call: a source that
  hangs costs a request its timeout, not timeout times attempts.
- **Retries** only for idempotent reads, on SOURCE_UNAVAILABLE and SOURCE_TIMEOUT, with exponential
  backoff and full jitter; an upstream's `Retry-After` is honoured when it fits in the deadline. A retry
  budget (a share of recent calls) keeps retries from multiplying load on a source that is already down.
- **Circuit breaker.** Opens after `breaker_failures` failures in a row, or when the error rate of the
  last `breaker_window` calls passes `breaker_error_rate`; while open, calls fail at once with
  CIRCUIT_OPEN; after `breaker_open_s` one probe at a time is let through (half-open), and its success
  closes the breaker.
- **Bulkhead.** At most `max_concurrent` calls in flight per source, so a slow source cannot take every
  connection and task of the gateway with it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sources.base import SourceCall, record_call
from sources.errors import SourceError, SourceTimeout, SourceUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    retries: int = 2
    backoff_base_s: float = 0.05
    backoff_max_s: float = 1.0
    retry_budget: float = 0.2  # retries may add at most this share to recent calls
    breaker_failures: int = 5
    breaker_error_rate: float = 0.5
    breaker_window: int = 20
    breaker_open_s: float = 5.0
    max_concurrent: int = 32


class CircuitOpen(SourceError):
    code = "CIRCUIT_OPEN"

    @property
    def public_message(self) -> str:
        return f"Source '{self.source}' is failing; the gateway is giving it time to recover"


class CircuitBreaker:
    """The breaker's state. Every call it admits is settled exactly once, whatever the call raised:
    a half-open breaker lets one probe through, and a probe never settled would keep it shut for good."""

    def __init__(self, policy: ResiliencePolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.clock = clock
        self.state = "closed"
        self._opened_at = 0.0
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=policy.breaker_window)
        self._probe: int | None = None  # the ticket of the probe in flight, while half-open
        self._tickets = 0

    def admit(self) -> int | None:
        """A ticket for a call to settle (0 while closed, the probe's own while half-open); None: fail at once."""
        if self.state == "closed":
            return 0
        if self.state == "open" and self.clock() - self._opened_at >= self.policy.breaker_open_s:
            self.state = "half_open"
        if self.state == "half_open" and self._probe is None:
            self._tickets += 1
            self._probe = self._tickets
            return self._probe
        return None

    def settle(self, ticket: int, ok: bool | None) -> None:
        """The outcome of an admitted call; None when it was cancelled, which says nothing of the source."""
        if ticket:
            if ticket != self._probe:
                return  # a probe the breaker already gave up on (its deadline passed and was counted)
            self._probe = None
            if ok is None:
                return  # the next call probes instead
            self._recent.append(ok)
            if ok:
                self.state, self._consecutive = "closed", 0
                self._recent.clear()
            else:
                self._open()
            return
        if ok is not None:
            self.record(ok)

    def record(self, ok: bool) -> None:
        """An outcome no ticket stands for (a call abandoned at its deadline), or of a call admitted while closed."""
        self._recent.append(ok)
        if self.state != "closed":
            if not ok and self.state == "half_open":
                self._open()  # the probe's deadline passed
            return
        self._consecutive = 0 if ok else self._consecutive + 1
        failures = self._recent.count(False)
        full = len(self._recent) == self._recent.maxlen
        if self._consecutive >= self.policy.breaker_failures or (
                full and failures / len(self._recent) > self.policy.breaker_error_rate):
            self._open()

    def _open(self) -> None:
        self.state, self._opened_at, self._probe = "open", self.clock(), None


class _Claim:
    """The breaker ticket of a call's attempt under way: settled once, by the attempt or by the caller
    that abandons it (deadline passed, caller cancelled), whichever comes first."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.ticket: int | None = None

    def take(self, ticket: int) -> None:
        self.ticket = ticket

    def settle(self, ok: bool | None) -> bool:
        """Settle the ticket held, if any; whether there was one."""
        ticket, self.ticket = self.ticket, None
        if ticket is None:
            return False
        self.breaker.settle(ticket, ok)
        return True


class RetryBudget:
    """Each call earns `ratio` of a retry, up to a small reserve; each retry spends one."""

    def __init__(self, ratio: float, reserve: float = 10.0) -> None:
        self.ratio = ratio
        self.reserve = reserve
        self.tokens = reserve

    def earn(self) -> None:
        self.tokens = min(self.reserve, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Resilience:
    def __init__(self, source: str, policy: ResiliencePolicy, timeout_s: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.source = source
        self.policy = policy
        self.timeout_s = timeout_s
        self.clock = clock
        self.sleep = sleep
        self.breaker = CircuitBreaker(policy, clock)
        self.budget = RetryBudget(policy.retry_budget)
        self.bulkhead = asyncio.Semaphore(policy.max_concurrent)
        self.retries = 0
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def call(self, operation: str, attempt: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        deadline = time.monotonic() + self.timeout_s
        claim = _Claim(self.breaker)

        async def guarded() -> T:
            async with self.bulkhead:
                return await self._attempts(operation, attempt, idempotent, deadline, claim)

        task = asyncio.ensure_future(guarded())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            # The caller gave up: so does the attempt, and its probe (if it held one) is free at once.
            self._abandon(task)
            claim.settle(None)
            raise
        if not done:
            # Answer at the deadline. A cancelled driver call may need the server's reply to clean up
            # (a database connection being reset); that happens in the background, not on our time.
            self._abandon(task)
            if not claim.settle(False):
                self.breaker.record(False)  # the deadline passed between attempts
            raise SourceTimeout(self.source, f"{operation} exceeded {self.timeout_s}s")
        return task.result()

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so it is not reported as lost

    async def _attempts(self, operation: str, attempt: Callable[[], Awaitable[T]], idempotent: bool,
                        deadline: float, claim: _Claim) -> T:
        tries = 0
        while True:
            ticket = self.breaker.admit()
            if ticket is None:
                record_call(SourceCall(self.source, operation, CircuitOpen.code, 0.0))
                raise CircuitOpen(self.source, f"{operation}: circuit open")
            claim.take(ticket)
            self.budget.earn()
            # Every branch settles the ticket once: an exception nobody expected (a bad URL, a stream
            # error) counts as a failure, a cancellation counts as nothing, and neither keeps the probe.
            try:
                result = await attempt()
            except (SourceUnavailable, SourceTimeout) as exc:
                claim.settle(False)
                tries += 1
                delay = self._delay(exc, tries)
                if (not idempotent or tries > self.policy.retries or delay is None
                        or time.monotonic() + delay >= deadline or not self.budget.spend()):
                    raise
                self.retries += 1
                await self.sleep(delay)
                continue
            except SourceError:
                claim.settle(True)  # the source answered; the answer was the problem
                raise
            except Exception:
                claim.settle(False)
                raise
            except BaseException:
                claim.settle(None)
                raise
            claim.settle(True)
            return result

    def _delay(self, exc: SourceError, tries: int) -> float | None:
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            return float(retry_after)
        ceiling = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** (tries - 1))
        return random.uniform(0, ceiling)
