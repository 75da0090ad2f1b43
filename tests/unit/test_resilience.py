"""The circuit breaker and the retry budget on their own: a clock the test moves, a sleep that returns at
once, attempts that fail as told. Whatever an attempt raises, a half-open breaker lets a later probe through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from sources.errors import SourceError, SourceUnavailable, UpstreamBadResponse
from sources.resilience import CircuitBreaker, CircuitOpen, Resilience, ResiliencePolicy, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def no_sleep(_: float) -> None:
    return None


def down() -> Callable[[], Awaitable[str]]:
    async def attempt() -> str:
        raise SourceUnavailable("crm", "HTTP 503")
    return attempt


def answering(value: str = "ok") -> Callable[[], Awaitable[str]]:
    async def attempt() -> str:
        return value
    return attempt


def raising(exc: BaseException) -> Callable[[], Awaitable[str]]:
    async def attempt() -> str:
        raise exc
    return attempt


def resilience(clock: Clock, **policy: float) -> Resilience:
    settings = {"retries": 0, "breaker_failures": 3, "breaker_open_s": 5.0, **policy}
    return Resilience("crm", ResiliencePolicy(**settings), timeout_s=5, clock=clock,  # type: ignore[arg-type]
                      sleep=no_sleep)


async def opened(clock: Clock, **policy: float) -> Resilience:
    """A breaker that three failures in a row have opened."""
    r = resilience(clock, **policy)
    for _ in range(3):
        with pytest.raises(SourceUnavailable):
            await r.call("x", down(), idempotent=True)
    assert r.breaker.state == "open"
    return r


# --- opening ------------------------------------------------------------------------------------------

def test_opens_after_n_consecutive_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker(ResiliencePolicy(breaker_failures=3, breaker_window=100), clock)
    for ok in (False, False, True, False, False):
        breaker.record(ok)
    assert breaker.state == "closed"  # a success in between starts the count again
    breaker.record(False)
    assert breaker.state == "open"


def test_opens_when_the_error_rate_over_the_window_passes_the_limit() -> None:
    breaker = CircuitBreaker(ResiliencePolicy(breaker_failures=1000, breaker_error_rate=0.5, breaker_window=10),
                             Clock())
    for ok in [True, False] * 5:  # 50 %: not over the limit
        breaker.record(ok)
    assert breaker.state == "closed"
    breaker.record(False)  # the window now holds 6 failures of 10
    assert breaker.state == "open"


def test_no_error_rate_verdict_before_the_window_is_full() -> None:
    breaker = CircuitBreaker(ResiliencePolicy(breaker_failures=1000, breaker_error_rate=0.5, breaker_window=10),
                             Clock())
    for ok in (False, True, False):
        breaker.record(ok)
    assert breaker.state == "closed"


async def test_an_open_breaker_fails_at_once_and_calls_nobody() -> None:
    clock = Clock()
    r = await opened(clock)
    calls: list[str] = []

    async def attempt() -> str:
        calls.append("x")
        return "ok"

    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        await r.call("x", attempt, idempotent=True)
    assert calls == []


# --- half-open ----------------------------------------------------------------------------------------

async def test_half_open_after_breaker_open_s_and_probe_success_closes() -> None:
    clock = Clock()
    r = await opened(clock)
    clock.now += 5
    assert await r.call("x", answering(), idempotent=True) == "ok"
    assert r.breaker.state == "closed"
    assert await r.call("x", answering(), idempotent=True) == "ok"


async def test_probe_failure_reopens_for_another_breaker_open_s() -> None:
    clock = Clock()
    r = await opened(clock)
    clock.now += 5
    with pytest.raises(SourceUnavailable):
        await r.call("x", down(), idempotent=True)
    assert r.breaker.state == "open"
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        await r.call("x", answering(), idempotent=True)
    clock.now += 0.1
    assert await r.call("x", answering(), idempotent=True) == "ok"


async def test_one_probe_at_a_time() -> None:
    clock = Clock()
    r = await opened(clock)
    clock.now += 5
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "probe"

    probe = asyncio.create_task(r.call("x", slow, idempotent=True))
    await asyncio.sleep(0)  # the probe is admitted and waiting for its answer
    with pytest.raises(CircuitOpen):
        await r.call("x", answering(), idempotent=True)
    release.set()
    assert await probe == "probe"
    assert r.breaker.state == "closed"


async def test_a_source_error_that_is_an_answer_closes_like_a_success() -> None:
    clock = Clock()
    r = await opened(clock)
    clock.now += 5
    with pytest.raises(UpstreamBadResponse):
        await r.call("x", raising(UpstreamBadResponse("crm", "not JSON")), idempotent=True)
    assert r.breaker.state == "closed"


@pytest.mark.parametrize("exc", [RuntimeError("bug"), httpx.InvalidURL("bad url"),
                                 httpx.StreamError("stream consumed"), OSError("cannot bind")],
                         ids=["RuntimeError", "InvalidURL", "StreamError", "OSError"])
async def test_a_probe_raising_something_else_counts_as_a_failure_and_frees_the_probe(exc: Exception) -> None:
    clock = Clock()
    r = await opened(clock)
    clock.now += 5
    with pytest.raises(type(exc)):
        await r.call("x", raising(exc), idempotent=True)
    assert r.breaker.state == "open"  # a failed probe: open again, for breaker_open_s
    clock.now += 5
    assert await r.call("x", answering(), idempotent=True) == "ok"  # not stuck half-open
    assert r.breaker.state == "closed"


async def test_a_cancelled_probe_frees_the_probe_without_counting() -> None:
    clock = Clock()
    r = await opened(clock)
    clock.now += 5
    started = asyncio.Event()

    async def hanging() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    probe = asyncio.create_task(r.call("x", hanging, idempotent=True))
    await started.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert r.breaker.state == "half_open"  # the cancellation says nothing about the source
    assert await r.call("x", answering(), idempotent=True) == "ok"  # the next call probes at once
    assert r.breaker.state == "closed"


async def test_non_source_errors_count_as_failures_while_closed() -> None:
    clock = Clock()
    r = resilience(clock)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await r.call("x", raising(RuntimeError("bug")), idempotent=True)
    assert r.breaker.state == "open"


async def test_a_probe_abandoned_at_its_deadline_reopens_and_its_late_end_changes_nothing() -> None:
    clock = Clock()
    r = await opened(clock)
    r.timeout_s = 0.01
    clock.now += 5

    async def hanging() -> str:
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(SourceError):
        await r.call("x", hanging, idempotent=True)
    assert r.breaker.state == "open"
    await asyncio.sleep(0)  # the abandoned attempt takes its cancellation
    clock.now += 5
    assert await r.call("x", answering(), idempotent=True) == "ok"
    assert r.breaker.state == "closed"


# --- retry budget -------------------------------------------------------------------------------------

def test_retry_budget_earns_a_share_per_call_up_to_its_reserve() -> None:
    budget = RetryBudget(0.2, reserve=2)
    assert budget.spend() and budget.spend()
    assert not budget.spend()  # the reserve is spent
    for _ in range(4):
        budget.earn()
    assert not budget.spend()  # 0.8 of a retry
    budget.earn()
    assert budget.spend() and not budget.spend()
    for _ in range(100):
        budget.earn()
    assert budget.tokens == 2  # never more than the reserve


async def test_retry_budget_stops_retries_beyond_its_share() -> None:
    clock = Clock()
    r = resilience(clock, retries=3, backoff_base_s=0, breaker_failures=1000, breaker_error_rate=1.0,
                   retry_budget=0.25)
    r.budget.tokens = r.budget.reserve = 1.0  # one retry in reserve, then a quarter of one per attempt
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        raise SourceUnavailable("crm", "HTTP 503")

    for _ in range(5):
        with pytest.raises(SourceUnavailable):
            await r.call("x", attempt, idempotent=True)
    # Without a budget: 5 calls of 4 attempts each (15 retries). With it: the reserve's retry, then
    # one more once four attempts have earned it.
    assert r.retries == 2 and attempts == 7
