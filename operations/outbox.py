"""The outbox relay: hands the changes sagas logged to their consumers, then marks them published.

Each saga publishes its own changes as soon as a step has committed them (so the next read after a
mutation already sees fresh data); the relay's loop picks up whatever was left behind (a crash between
commit and publish, a consumer that failed). Consumers must be idempotent: a change may reach them twice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from operations.changes import Change
from operations.store import SagaStore

log = structlog.get_logger("operations.outbox")

#: Takes a batch of changes, in the order they were logged.
Consumer = Callable[[Sequence[Change]], Awaitable[None]]


class Relay:
    def __init__(self, store: SagaStore, consumers: Sequence[Consumer],
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.store = store
        self.consumers = list(consumers)
        self.clock_ms = clock_ms

    async def publish(self, saga_id: str | None = None) -> int:
        """Publish what is unpublished (of one saga, or all) and mark it so; returns how many changes went out."""
        rows = await self.store.unpublished(saga_id)
        if not rows:
            return 0
        changes = [row.change for row in rows]
        for consumer in self.consumers:
            await consumer(changes)  # a failure leaves them all unpublished, for the next round
        await self.store.mark_published([row.id for row in rows], self.clock_ms())
        log.debug("outbox_published", count=len(rows), saga=saga_id)
        return len(rows)

    async def deliver(self, changes: Sequence[Change]) -> None:
        """Hand a saga's changes, just logged, to the consumers; the saga marks them published in its next
        transaction. Until then the relay's loop may deliver them again."""
        for consumer in self.consumers:
            await consumer(changes)
