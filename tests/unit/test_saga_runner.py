"""The saga runner's state machine, with scripted steps on a real (SQLite) saga log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import upgrade
from operations.changes import Change, ChangeKind
from operations.outbox import Relay
from operations.saga import Done, SagaKind, SagaRunner, SagaSettings, SagaState, Step, StepContext
from operations.store import SagaStore
from sources.errors import RuleViolation, SourceUnavailable
from sources.sql import make_engine
from tests.conftest import MARIADB_ADMIN, POSTGRES_ADMIN, _fresh_database

FAST = SagaSettings(inline_attempts=2, inline_backoff_s=0.0, retry_base_ms=0, retry_max_ms=0, max_attempts=5,
                    wait_s=2)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The saga log on each database the gateway's own may be (SQLite writes take their one-hop path)."""
    if request.param == "sqlite":
        db = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}", pool_size=2)
        await upgrade(db)
        yield db
        await db.dispose()
        return
    admin, server = (POSTGRES_ADMIN, "PostgreSQL") if request.param == "postgres" else (MARIADB_ADMIN, "MariaDB")
    async for url in _fresh_database(admin, server):
        db = make_engine(url, pool_size=2)
        await upgrade(db)
        yield db
        await db.dispose()


class Script:
    """Steps whose outcomes a test sets, recording every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, list[Exception]] = {}  # failures to raise, in order, before succeeding
        self.applied: set[str] = set()
        self.delivered: list[Change] = []

    def action(self, name: str) -> Callable[[StepContext], Any]:
        async def run(ctx: StepContext) -> Done:
            self.calls.append(name)
            pending = self.fail.get(name)
            if pending:
                raise pending.pop(0)
            self.applied.add(name)
            return Done({"step": name, "key": ctx.key},
                        (Change(ChangeKind.STOCK_CHANGED, "erp", "stock", name),))

        return run

    def undo(self, name: str) -> Callable[[StepContext, Any], Any]:
        async def run(ctx: StepContext, result: Any) -> Done:
            self.calls.append(f"undo {name}")
            pending = self.fail.get(f"undo {name}")
            if pending:
                raise pending.pop(0)
            self.applied.discard(name)
            return Done()

        return run

    def lookup(self, name: str) -> Callable[[StepContext], Any]:
        async def run(ctx: StepContext) -> Done | None:
            self.calls.append(f"lookup {name}")
            return Done({"step": name, "found": True}) if name in self.applied else None

        return run

    def kind(self) -> SagaKind:
        return SagaKind("test", (
            Step("reserve", self.action("reserve"), compensation=self.undo("reserve")),
            Step("commit", self.action("commit"), lookup=self.lookup("commit"), pivot=True),
            Step("notify", self.action("notify"), after_pivot=True),
        ))

    async def consume(self, changes: Any) -> None:
        self.delivered.extend(changes)


def runner(engine: AsyncEngine, script: Script, settings: SagaSettings = FAST) -> SagaRunner:
    store = SagaStore(engine)
    relay = Relay(store, [script.consume])
    return SagaRunner(store, [script.kind()], publish=relay.deliver, settings=settings)


def down() -> SourceUnavailable:
    return SourceUnavailable("erp", "down")


async def run(r: SagaRunner, key: str = "k1") -> Any:
    try:
        return await r.run("test", key, {"n": 1}, {"kind": "user", "subject": "t"}, "req-1")
    finally:
        await r.settle()  # the log writes left after the answer land before the test looks (or drops the database)


async def test_a_saga_runs_its_steps_in_order_and_publishes_their_changes(engine: AsyncEngine) -> None:
    script = Script()
    r = runner(engine, script)
    outcome = await run(r)
    assert outcome.state is SagaState.COMPLETED and outcome.committed
    assert script.calls == ["reserve", "commit", "notify"]
    assert [c.key for c in script.delivered] == ["reserve", "commit", "notify"]
    await r.settle()
    assert await SagaStore(engine).unpublished() == []
    # Each step's key is derived from the saga's, and differs per step.
    keys = {outcome.results[s]["key"] for s in ("reserve", "commit", "notify")}
    assert len(keys) == 3


async def test_the_same_key_returns_the_first_outcome_without_running_anything(engine: AsyncEngine) -> None:
    script = Script()
    r = runner(engine, script)
    first = await run(r)
    again = await run(r)
    assert again.id == first.id and script.calls == ["reserve", "commit", "notify"]


async def test_a_rule_refusing_the_pivot_undoes_what_came_before(engine: AsyncEngine) -> None:
    script = Script()
    script.fail["commit"] = [RuleViolation("INSUFFICIENT_STOCK", "none left", "input.lines.0.quantity")]
    outcome = await run(runner(engine, script))
    assert outcome.state is SagaState.REJECTED
    assert outcome.rejection is not None and outcome.rejection.code == "INSUFFICIENT_STOCK"
    assert script.calls == ["reserve", "commit", "undo reserve"]
    assert [s.state for s in outcome.steps] == ["COMPENSATED", "FAILED", "PENDING"]


async def test_an_uncertain_pivot_found_not_applied_fails_and_undoes(engine: AsyncEngine) -> None:
    script = Script()
    script.fail["commit"] = [down(), down()]  # both inline attempts
    outcome = await run(runner(engine, script))
    assert outcome.state is SagaState.FAILED and not outcome.committed
    assert script.calls == ["reserve", "commit", "commit", "lookup commit", "undo reserve"]
    assert outcome.error is not None and outcome.error["code"] == "SOURCE_UNAVAILABLE"


async def test_an_uncertain_pivot_found_applied_goes_forward(engine: AsyncEngine) -> None:
    script = Script()

    async def applied_then_lost(ctx: StepContext) -> Done:
        script.calls.append("commit")
        script.applied.add("commit")  # it committed, but the answer was lost
        raise down()

    kind = script.kind()
    steps = (kind.steps[0], Step("commit", applied_then_lost, lookup=script.lookup("commit"), pivot=True),
             kind.steps[2])
    store = SagaStore(engine)
    r = SagaRunner(store, [SagaKind("test", steps)], publish=Relay(store, [script.consume]).deliver, settings=FAST)
    outcome = await run(r)
    assert outcome.state is SagaState.COMPLETED and outcome.committed
    assert script.calls == ["reserve", "commit", "commit", "lookup commit", "notify"]
    assert "undo reserve" not in script.calls


async def test_a_step_after_the_pivot_is_retried_until_it_succeeds(engine: AsyncEngine) -> None:
    script = Script()
    script.fail["notify"] = [down()] * 4  # two inline attempts in the request, two in the first resume
    r = runner(engine, script)
    outcome = await run(r)
    assert outcome.state is SagaState.PENDING and outcome.committed
    assert [s.state for s in outcome.steps] == ["DONE", "DONE", "RETRYING"]
    assert await r.resume_due() == 1  # two more failures: still pending
    assert (await SagaStore(engine).get(outcome.id)).state == SagaState.PENDING  # type: ignore[union-attr]
    assert await r.resume_due() == 1
    final = await SagaStore(engine).get(outcome.id)
    assert final is not None and final.state == SagaState.COMPLETED
    assert script.calls.count("notify") == 5 and script.calls.count("commit") == 1


async def test_a_refused_step_after_the_pivot_needs_attention(engine: AsyncEngine) -> None:
    script = Script()
    script.fail["notify"] = [RuleViolation("RULE_VIOLATED", "the CRM says no")]
    outcome = await run(runner(engine, script))
    assert outcome.state is SagaState.NEEDS_ATTENTION and outcome.committed
    assert "undo reserve" not in script.calls  # past the pivot nothing is undone


async def test_an_undo_that_fails_is_retried_later_and_gives_up_into_attention(engine: AsyncEngine) -> None:
    script = Script()
    script.fail["commit"] = [RuleViolation("INSUFFICIENT_STOCK", "none left")]
    script.fail["undo reserve"] = [down(), down()]
    r = runner(engine, script)
    outcome = await run(r)
    assert outcome.state is SagaState.COMPENSATING
    assert await r.resume_due() == 1
    done = await SagaStore(engine).get(outcome.id)
    assert done is not None and done.state == SagaState.REJECTED
    assert "reserve" not in script.applied

    stuck = Script()
    stuck.fail["commit"] = [RuleViolation("INSUFFICIENT_STOCK", "none left")]
    stuck.fail["undo reserve"] = [down()] * 100
    r2 = runner(engine, stuck, SagaSettings(inline_attempts=1, retry_base_ms=0, retry_max_ms=0, max_attempts=3))
    outcome2 = await run(r2, "k2")
    for _ in range(5):
        await r2.resume_due()
    final = await SagaStore(engine).get(outcome2.id)
    assert final is not None and final.state == SagaState.NEEDS_ATTENTION
    assert "gave up" in final.error["attention"]


async def test_a_saga_left_running_by_a_dead_process_is_resumed_once_its_lease_runs_out(engine: AsyncEngine) -> None:
    script = Script()
    now = [1_000_000]
    dead = runner(engine, script, SagaSettings(lease_ms=10_000))
    dead.clock_ms = lambda: now[0]
    store = SagaStore(engine)
    # A process died after the pivot's completion was logged: the saga is RUNNING under its lease.
    script.fail["notify"] = [KeyboardInterrupt()]  # type: ignore[list-item]
    with pytest.raises(KeyboardInterrupt):
        await run(dead)
    (saga,) = await store.listing(None, 10)
    await store.claim(saga.id, dead.owner, now[0], 10_000, force=True)  # the dead process's lease stands
    other = runner(engine, script)
    other.clock_ms = lambda: now[0]
    assert await other.resume_due() == 0  # its lease is live: not ours to drive
    now[0] += 10_001
    assert await other.resume_due() == 1
    final = await store.get(saga.id)
    assert final is not None and final.state == SagaState.COMPLETED
    assert script.calls.count("commit") == 1 and script.calls.count("reserve") == 1


async def test_published_changes_are_purged_after_their_retention(engine: AsyncEngine) -> None:
    script = Script()
    r = runner(engine, script)
    await run(r)
    await r.settle()
    store = SagaStore(engine)
    assert await store.purge_published(0) == 0
    assert await store.purge_published(2**62) == 3
