"""The operations layer as the gateway runs it: the sagas it knows, their log and outbox, and the background
loop that resumes unfinished sagas and publishes what was left unpublished."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.principal import Principal
from operations.invalidation import CacheInvalidation
from operations.orders import cancel_order, place_order
from operations.outbox import Consumer, Relay
from operations.purchase_orders import confirm_purchase_order, create_purchase_order, receive_purchase_order
from operations.saga import Outcome, SagaRunner, SagaSettings, SagaState
from operations.shipments import book_shipment
from operations.store import SagaRow, SagaStore
from operations.systems import Systems
from sources.cache import Cache
from sources.tasks import failure_fields, watch

log = structlog.get_logger("operations")
PURGE_EVERY_S = 3_600


def principal_json(principal: Principal) -> dict[str, Any]:
    return {"kind": principal.kind.value, "subject": principal.subject, "partnerId": principal.partner_id,
            "tokenId": principal.token_id}


class Operations:
    def __init__(self, engine: AsyncEngine, systems: Systems, cache: Cache,
                 entity_operations: Mapping[str, Mapping[str, tuple[str, ...]]], *,
                 settings: SagaSettings | None = None, resume_interval_s: float = 5.0,
                 outbox_retention_s: float = 7 * 86_400, consumers: Sequence[Consumer] = ()) -> None:
        self.systems = systems
        self.store = SagaStore(engine)
        self.relay = Relay(self.store, [CacheInvalidation(cache, entity_operations, self._on_change), *consumers])
        kinds = (place_order(systems), cancel_order(systems), book_shipment(systems),
                 create_purchase_order(systems), receive_purchase_order(systems), confirm_purchase_order(systems))
        self.runner = SagaRunner(self.store, kinds, publish=self.relay.deliver, settings=settings)
        self.resume_interval_s = resume_interval_s
        self.outbox_retention_s = outbox_retention_s
        self._purged_at = 0.0
        self._loop_task: asyncio.Task[None] | None = None

    def _on_change(self, change: Any) -> None:
        if change.source == "crm" and change.entity == "customer":
            self.systems.crosswalk.refresh_soon()

    async def run(self, kind: str, key: str, command: Mapping[str, Any], principal: Principal,
                  request_id: str) -> Outcome:
        return await self.runner.run(kind, key, command, principal_json(principal), request_id)

    async def resume(self) -> int:
        """Drive every unfinished saga that is due and publish what the outbox holds; returns sagas driven."""
        driven = await self.runner.resume_due()
        await self.relay.publish()
        return driven

    async def list(self, states: Sequence[SagaState] | None = None, limit: int = 50,
                   after: tuple[int, str] | None = None) -> list[SagaRow]:
        return await self.store.listing([s.value for s in states] if states else None, limit, after)

    async def get(self, saga_id: str) -> SagaRow | None:
        return await self.store.get(saga_id)

    async def start(self) -> None:
        """Prepare the ERP for writes and start the background loop (its first round resumes at once)."""
        await self.systems.erp_writer.install()
        self._loop_task = watch(asyncio.create_task(self._loop(), name="operations-loop"), "operations_loop_died")

    async def _loop(self) -> None:
        while True:
            try:
                await self.runner.renew_leases()
                driven = await self.resume()
                if driven:
                    log.info("sagas_resumed", count=driven)
                await self._purge()
            except Exception as exc:  # a database hiccup: logged, and the next round tries again
                log.error("operations_round_failed", **failure_fields(exc))
            await asyncio.sleep(self.resume_interval_s)

    async def _purge(self) -> None:
        """At most once an hour: drop outbox rows published longer ago than the retention."""
        now = time.time()
        if now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now
        purged = await self.store.purge_published(int((now - self.outbox_retention_s) * 1000))
        if purged:
            log.info("outbox_purged", count=purged)

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self.runner.settle()
        self.store.close()
