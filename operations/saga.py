"""Sagas: a business operation as named steps, each logged durably before and after it runs.

A saga's steps come in three kinds, in this order:

- **compensable** steps (a carrier booking): undone, in reverse order, if a later step before the pivot
  fails;
- the **pivot** (the ERP transaction): atomic and idempotent by its key; once it has committed the
  operation has happened, and nothing before it is undone any more;
- steps **after the pivot** (the CRM interaction): retried from the saga log until they succeed.

A failure is either *definite* (a business rule refused it, or the system answered 4xx: nothing was
applied) or *uncertain* (a timeout, a lost connection: it may have been applied). An uncertain step is
first retried in place (every step is idempotent by its key); if it still fails it is *resolved* later,
by its `lookup` (did it take effect?) or by replaying it under the same key, and the saga goes on from
what is found: forward if the pivot took effect, backward otherwise. Whatever cannot be driven to an end
after `max_attempts` is `NEEDS_ATTENTION`: listed by `gateway sagas list` and the `sagas` admin query.

Each step's idempotency key is derived from the saga's key (itself from the principal and the client's
`Idempotency-Key`), so replays after a crash reach upstream systems as the same request.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import structlog

from operations.changes import Change
from operations.store import SagaRow, SagaStore, StepRow
from sources.errors import RuleViolation, SourceError, UpstreamRejected
from sources.tasks import failure_fields

log = structlog.get_logger("operations.saga")

#: Test-only fault point: the process kills itself (SIGKILL) right after this step's completion is logged.
KILL_AFTER_STEP = "GATEWAY_FAULT_KILL_AFTER_STEP"


class SagaState(StrEnum):
    RUNNING = "RUNNING"  # being driven forward
    PENDING = "PENDING"  # the pivot is done; a later step waits for a retry
    COMPENSATING = "COMPENSATING"  # being undone (or an uncertain step being resolved)
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"  # a business rule refused it; whatever was done before was undone
    FAILED = "FAILED"  # a system failed before the pivot; whatever was done before was undone
    NEEDS_ATTENTION = "NEEDS_ATTENTION"  # could be neither completed nor undone: a person must look


class StepState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"  # definitely not applied
    UNKNOWN = "UNKNOWN"  # failed in a way that may have applied it: to be resolved
    RETRYING = "RETRYING"  # after the pivot: will be tried again
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"


FINISHED = frozenset({SagaState.COMPLETED, SagaState.REJECTED, SagaState.FAILED, SagaState.NEEDS_ATTENTION})
UNFINISHED = (SagaState.RUNNING, SagaState.PENDING, SagaState.COMPENSATING)


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a step's action sees: the command, the results of the steps done before it, its own key."""

    saga_id: str
    command: Mapping[str, Any]
    results: Mapping[str, Any]
    key: str
    principal: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Done:
    """A step's (or compensation's) result, JSON-serialisable, and the changes it made."""

    result: dict[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()


Action = Callable[[StepContext], Awaitable[Done]]
Compensation = Callable[[StepContext, Any], Awaitable[Done]]
Lookup = Callable[[StepContext], Awaitable[Done | None]]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    action: Action
    compensation: Compensation | None = None
    #: Whether the action took effect, found out without doing it (None: replay the action to find out).
    lookup: Lookup | None = None
    pivot: bool = False
    after_pivot: bool = False


@dataclass(frozen=True, slots=True)
class SagaKind:
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class SagaSettings:
    lease_ms: int = 30_000
    inline_attempts: int = 3  # tries of a step within the request before it is left to the background
    inline_backoff_s: float = 0.1
    step_timeout_s: float = 30.0
    retry_base_ms: int = 1_000
    retry_max_ms: int = 300_000
    max_attempts: int = 20
    wait_s: float = 30.0  # how long a second caller of a running saga waits for it


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a saga stands, for the caller that started it or asks again."""

    id: str
    kind: str
    state: SagaState
    results: Mapping[str, Any]
    steps: tuple[StepRow, ...]
    error: Mapping[str, Any] | None
    #: Whether the pivot is done: the operation has happened, whatever later steps still owe.
    committed: bool = False

    @classmethod
    def of(cls, row: SagaRow, kind: SagaKind | None = None) -> Outcome:
        pivots = {s.name for s in kind.steps if s.pivot} if kind is not None else set()
        return cls(row.id, row.kind, SagaState(row.state),
                   {s.name: s.result for s in row.steps if s.state in (StepState.DONE, StepState.COMPENSATED)},
                   row.steps, row.error,
                   committed=any(s.name in pivots and s.state == StepState.DONE for s in row.steps))

    @property
    def rejection(self) -> RuleViolation | None:
        e = self.error
        if self.state is SagaState.REJECTED and e is not None and e.get("type") == "rule":
            return RuleViolation(str(e["code"]), str(e["message"]), e.get("field"))
        return None


class SagaConflict(Exception):
    """The saga's key is taken by a saga of another kind or command (a client key reused for another write)."""


class SagaBusy(Exception):
    """Another process drives this saga, and it did not finish within the wait."""


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, RuleViolation):
        return {"type": "rule", "code": exc.code, "message": exc.message, "field": exc.field}
    if isinstance(exc, UpstreamRejected):
        return {"type": "rejected", "code": exc.code, "message": exc.public_message, "source": exc.source}
    if isinstance(exc, SourceError):
        return {"type": "system", "code": exc.code, "message": exc.public_message, "source": exc.source}
    if isinstance(exc, TimeoutError):
        return {"type": "system", "code": "SOURCE_TIMEOUT", "message": "a step did not finish in time"}
    return {"type": "system", "code": "INTERNAL_ERROR", "message": type(exc).__name__}


def _definite(exc: BaseException) -> bool:
    """Whether a failure certainly applied nothing (the system said no), as opposed to an unknown outcome."""
    return isinstance(exc, RuleViolation | UpstreamRejected)


@dataclass(slots=True)
class _Run:
    """One drive of one saga in this process: whether changes were delivered but not yet marked published (and
    whether a delivery failed: then the relay's loop publishes and marks them all), whether the saga's final
    commit already gave up the lease, and the saga as that commit left it."""

    delivered: bool = False
    failed: bool = False
    released: bool = False
    final: SagaRow | None = None

    def take(self) -> bool:
        """Whether the next commit should mark the saga's changes published."""
        mark, self.delivered = self.delivered and not self.failed, False
        return mark


def step_key(saga_key: str, step: str) -> str:
    return hashlib.sha256(f"{saga_key}:{step}".encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


class SagaRunner:
    """Starts sagas, drives them forward or back, and resumes the unfinished ones (after a crash, or when a
    step's retry is due). Several processes may share one database: a lease says who drives a saga."""

    def __init__(self, store: SagaStore, kinds: Sequence[SagaKind], *,
                 publish: Callable[[Sequence[Change]], Awaitable[None]], settings: SagaSettings | None = None,
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        self.store = store
        self.kinds = {k.name: k for k in kinds}
        self.publish = publish
        self.settings = settings or SagaSettings()
        self.clock_ms = clock_ms
        self.owner = uuid.uuid4().hex
        self._driving: dict[str, asyncio.Future[SagaRow]] = {}
        self._runs: dict[str, _Run] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- entry points ---------------------------------------------------------------------------------

    async def run(self, kind: str, key: str, command: Mapping[str, Any], principal: Mapping[str, Any],
                  request_id: str) -> Outcome:
        """Run a new saga for `key`, or report (or finish) the one that key started before."""
        definition = self.kinds[kind]
        now = self.clock_ms()
        # Created with its first step running: the log says so before the step starts, in one commit.
        row = SagaRow(id=uuid.uuid4().hex, kind=kind, key=key, principal=dict(principal), request_id=request_id,
                      command=dict(command), state=SagaState.RUNNING, result=None, error=None, attempts=1,
                      next_attempt_ms=None, owner=self.owner, lease_until_ms=now + self.settings.lease_ms,
                      created_ms=now, updated_ms=now,
                      steps=tuple(StepRow(i, s.name, StepState.RUNNING if i == 0 else StepState.PENDING,
                                          1 if i == 0 else 0, None, None)
                                  for i, s in enumerate(definition.steps)))
        if await self.store.create(row):
            log.info("saga_started", saga=row.id, kind=kind, request_id=request_id)
            return self.outcome(await self._drive(row.id, claimed=True, fresh=row))
        existing = await self.store.by_key(key)
        if existing is None:  # deleted in between: not expected, but never a silent second run
            raise SagaBusy(key)
        if existing.kind != kind or existing.command != dict(command):
            raise SagaConflict(existing.id)
        return self.outcome(await self._settled(existing))

    async def drive(self, saga_id: str) -> Outcome | None:
        """Drive one unfinished saga as far as it goes now (resume); None if another process holds it."""
        if not await self.store.claim(saga_id, self.owner, self.clock_ms(), self.settings.lease_ms):
            return None
        return self.outcome(await self._drive(saga_id, claimed=True))

    async def resume_due(self, limit: int = 100) -> int:
        """Drive every unfinished saga that is due: after start-up, and periodically. Returns how many ran."""
        ran = 0
        for saga_id in await self.store.due(UNFINISHED, self.clock_ms(), limit):
            if saga_id in self._driving:
                continue
            try:
                if await self.drive(saga_id) is not None:
                    ran += 1
            except Exception as exc:  # one broken saga must not stop the others; it is logged and retried
                log.error("saga_resume_failed", saga=saga_id, **failure_fields(exc))
        return ran

    def _behind(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.warning("saga_log_write_deferred", **failure_fields(t.exception()))  # type: ignore[arg-type]

        task.add_done_callback(done)

    async def settle(self) -> None:
        """Wait for the log writes left to run after their sagas answered."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def outcome(self, row: SagaRow) -> Outcome:
        return Outcome.of(row, self.kinds.get(row.kind))

    async def renew_leases(self) -> None:
        await self.store.renew(list(self._driving), self.owner, self.clock_ms() + self.settings.lease_ms)

    # --- driving --------------------------------------------------------------------------------------

    async def _settled(self, existing: SagaRow) -> SagaRow:
        """A saga someone started before: its outcome once it is no longer being driven by anyone."""
        deadline = time.monotonic() + self.settings.wait_s
        row: SagaRow | None = existing
        while row is not None:
            if row.state in FINISHED or row.state == SagaState.PENDING:
                return row
            inflight = self._driving.get(row.id)
            if inflight is not None:
                return await asyncio.shield(inflight)
            if await self.store.claim(row.id, self.owner, self.clock_ms(), self.settings.lease_ms):
                return await self._drive(row.id, claimed=True)  # its driver died, or a retry is waiting
            if time.monotonic() > deadline:
                raise SagaBusy(row.id)
            await asyncio.sleep(0.05)
            row = await self.store.get(row.id)
        raise SagaBusy(existing.id)

    async def _drive(self, saga_id: str, *, claimed: bool, fresh: SagaRow | None = None) -> SagaRow:
        """Drive the saga as far as it goes now; `fresh`: the row of a saga just created (not read back)."""
        inflight = self._driving.get(saga_id)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[SagaRow] = asyncio.get_running_loop().create_future()
        self._driving[saga_id] = future
        run = self._runs[saga_id] = _Run()
        try:
            row = await self._advance(saga_id, fresh)
            future.set_result(row)
            return row
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: a waiter may or may not be there to see it
            raise
        finally:
            del self._driving[saga_id], self._runs[saga_id]
            if run.take():
                # Off the caller's path: until it lands, the relay's loop may deliver them once more.
                self._behind(self.store.mark_saga_published(saga_id, self.clock_ms()))
            if claimed and not run.released:
                await self.store.release(saga_id, self.owner)

    async def _advance(self, saga_id: str, fresh: SagaRow | None) -> SagaRow:
        row = fresh or await self._get(saga_id)
        if row.state in FINISHED:
            return row
        if fresh is None:
            await self.store.saga(saga_id, self.clock_ms(), attempts=row.attempts + 1, next_attempt_ms=None)
        if row.state == SagaState.COMPENSATING:
            await self._backward(row)
        else:
            await self._forward(row, running=0 if fresh else None)
        return self._runs[saga_id].final or await self._get(saga_id)

    async def _get(self, saga_id: str) -> SagaRow:
        row = await self.store.get(saga_id)
        if row is None:
            raise SagaBusy(saga_id)
        return row

    def _context(self, row: SagaRow, results: Mapping[str, Any], step: str) -> StepContext:
        return StepContext(row.id, row.command, dict(results), step_key(row.key, step), row.principal)

    async def _forward(self, row: SagaRow, running: int | None = None) -> None:
        """Run the steps not done yet, in order. `running`: the step the log already shows as running."""
        definition = self.kinds[row.kind]
        results = {s.name: s.result for s in row.steps if s.state == StepState.DONE}
        if row.state != SagaState.RUNNING:
            await self.store.saga(row.id, self.clock_ms(), SagaState.RUNNING)
        todo = [(step, logged) for step, logged in zip(definition.steps, row.steps, strict=True)
                if logged.state != StepState.DONE]
        run = self._runs[row.id]
        attempts = {s.position: s.attempts for s in row.steps}
        for i, (step, logged) in enumerate(todo):
            ctx = self._context(row, results, step.name)
            if logged.position != running:
                await self.store.step(row.id, logged.position, StepState.RUNNING, self.clock_ms(), attempt=True,
                                      mark_published=run.take())
                attempts[logged.position] += 1
            try:
                done = await self._attempts(lambda ctx=ctx, step=step: step.action(ctx))  # type: ignore[misc]
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    raise
                await self._step_failed(row, step, logged, exc)
                return
            results[step.name] = done.result
            if i + 1 < len(todo):  # this step done and the next one running: one commit
                running = todo[i + 1][1].position
                attempts[running] += 1
                await self._step_done(row, step, logged.position, done, start_next=running)
                continue
            # The last step done, the saga completed and its lease given up: one commit.
            await self._step_done(row, step, logged.position, done, saga_state=SagaState.COMPLETED,
                                  saga_fields={"result": results, "error": None, "owner": None,
                                               "lease_until_ms": 0})
            run.released = True
            # As that commit left it: the caller's answer needs no read back.
            now = self.clock_ms()
            run.final = replace(row, state=SagaState.COMPLETED, result=results, error=None, owner=None,
                                lease_until_ms=0, next_attempt_ms=None, updated_ms=now, steps=tuple(
                                    replace(s, state=StepState.DONE, result=results[s.name], error=None,
                                            attempts=attempts[s.position]) for s in row.steps))
            log.info("saga_completed", saga=row.id, kind=row.kind)
            return
        await self.store.saga(row.id, self.clock_ms(), SagaState.COMPLETED, result=results, error=None)
        log.info("saga_completed", saga=row.id, kind=row.kind)

    async def _step_done(self, row: SagaRow, step: Step, position: int, done: Done, **logged: Any) -> None:
        await self.store.step(row.id, position, StepState.DONE, self.clock_ms(), result=done.result,
                              changes=done.changes, mark_published=self._runs[row.id].take(), **logged)
        if os.environ.get(KILL_AFTER_STEP) == step.name:
            log.warning("fault_kill_after_step", saga=row.id, step=step.name)
            os.kill(os.getpid(), signal.SIGKILL)
        await self._publish(row.id, done.changes)

    async def _step_failed(self, row: SagaRow, step: Step, logged: StepRow, exc: Exception) -> None:
        error = _error(exc)
        if not isinstance(exc, SourceError | RuleViolation | TimeoutError):
            log.error("saga_step_error", saga=row.id, step=step.name, **failure_fields(exc))
        else:
            log.warning("saga_step_failed", saga=row.id, step=step.name, code=error["code"])
        if step.after_pivot:
            if _definite(exc):
                await self.store.step(row.id, logged.position, StepState.FAILED, self.clock_ms(), error=error,
                                      saga_state=SagaState.NEEDS_ATTENTION, saga_fields={"error": error})
                log.error("saga_needs_attention", saga=row.id, step=step.name, code=error["code"])
                return
            await self.store.step(row.id, logged.position, StepState.RETRYING, self.clock_ms(), error=error)
            await self._retry_later(row, SagaState.PENDING, error)
            return
        state = StepState.FAILED if _definite(exc) else StepState.UNKNOWN
        await self.store.step(row.id, logged.position, state, self.clock_ms(), error=error,
                              saga_state=SagaState.COMPENSATING, saga_fields={"error": error})
        await self._backward(await self._get(row.id))

    async def _backward(self, row: SagaRow) -> None:
        """Undo what was done, newest first; resolve uncertain steps first. Stops (for a later retry) at
        anything that cannot be settled now."""
        definition = self.kinds[row.kind]
        results = {s.name: s.result for s in row.steps if s.state == StepState.DONE}
        for step, logged in reversed(list(zip(definition.steps, row.steps, strict=True))):
            state = StepState(logged.state)
            result = logged.result
            ctx = self._context(row, results, step.name)
            if state in (StepState.UNKNOWN, StepState.RUNNING):
                try:
                    found = await self._attempts(lambda ctx=ctx, step=step: self._resolve(step, ctx))  # type: ignore[misc]
                except Exception as exc:
                    if _definite(exc):
                        await self.store.step(row.id, logged.position, StepState.FAILED, self.clock_ms())
                        continue
                    await self._retry_later(row, SagaState.COMPENSATING, row.error)
                    return
                if found is None:
                    await self.store.step(row.id, logged.position, StepState.FAILED, self.clock_ms())
                    continue
                await self._step_done(row, step, logged.position, found)
                if step.pivot or step.after_pivot:
                    # It happened after all: past the pivot the operation stands, so it is finished forward.
                    log.info("saga_pivot_found_done", saga=row.id, step=step.name)
                    await self.store.saga(row.id, self.clock_ms(), SagaState.RUNNING, error=None)
                    await self._forward(await self._get(row.id))
                    return
                state, result = StepState.DONE, found.result
            if state in (StepState.DONE, StepState.COMPENSATING) and step.compensation is not None:
                if step.pivot or step.after_pivot:  # never undone; reaching here is a bug in the definition
                    await self._attention(row, f"step {step.name} cannot be undone")
                    return
                compensation = step.compensation
                await self.store.step(row.id, logged.position, StepState.COMPENSATING, self.clock_ms(),
                                      attempt=True)
                try:
                    undone = await self._attempts(
                        lambda ctx=ctx, result=result, c=compensation: c(ctx, result))  # type: ignore[misc]
                except Exception as exc:
                    if _definite(exc):
                        await self._attention(row, f"undoing {step.name} was refused: {_error(exc)['message']}")
                        return
                    await self._retry_later(row, SagaState.COMPENSATING, row.error)
                    return
                await self.store.step(row.id, logged.position, StepState.COMPENSATED, self.clock_ms(),
                                      changes=undone.changes, mark_published=self._runs[row.id].take(),
                                      result=result if undone.result == {} else {**(result or {}), **undone.result})
                await self._publish(row.id, undone.changes)
        error = row.error or {}
        final = SagaState.REJECTED if error.get("type") == "rule" else SagaState.FAILED
        await self.store.saga(row.id, self.clock_ms(), final)
        log.info("saga_undone", saga=row.id, kind=row.kind, state=final.value)

    async def _resolve(self, step: Step, ctx: StepContext) -> Done | None:
        if step.lookup is not None:
            return await step.lookup(ctx)
        return await step.action(ctx)  # idempotent by its key: the first outcome, or it happens now

    async def _attempts(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call`, tried up to `inline_attempts` times while its failures are uncertain (it is idempotent)."""
        attempts = max(1, self.settings.inline_attempts)
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(self.settings.step_timeout_s):
                    return await call()
            except Exception as exc:
                if _definite(exc) or attempt == attempts - 1:
                    raise
                await asyncio.sleep(self.settings.inline_backoff_s * (2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def _retry_later(self, row: SagaRow, state: SagaState, error: Any) -> None:
        current = await self._get(row.id)
        if current.attempts >= self.settings.max_attempts:
            await self._attention(current, f"gave up after {current.attempts} attempts", error)
            return
        delay = min(self.settings.retry_max_ms, self.settings.retry_base_ms * 2 ** max(0, current.attempts - 1))
        delay = int(delay * (0.75 + random.random() / 2))
        await self.store.saga(row.id, self.clock_ms(), state, next_attempt_ms=self.clock_ms() + delay, error=error)
        log.info("saga_retry_scheduled", saga=row.id, state=state.value, in_ms=delay)

    async def _attention(self, row: SagaRow, why: str, cause: Any = None) -> None:
        error = dict(cause or row.error or {})
        error["attention"] = why
        await self.store.saga(row.id, self.clock_ms(), SagaState.NEEDS_ATTENTION, error=error, next_attempt_ms=None)
        log.error("saga_needs_attention", saga=row.id, kind=row.kind, reason=why)

    async def _publish(self, saga_id: str, changes: Sequence[Change]) -> None:
        """Deliver changes just committed to the log, from memory; the next commit marks them published."""
        if not changes:
            return
        run = self._runs[saga_id]
        try:
            await self.publish(changes)
            run.delivered = True
        except Exception as exc:
            run.failed = True  # the relay publishes it later; the saga's progress does not depend on it
            log.warning("outbox_publish_deferred", saga=saga_id, **failure_fields(exc))
