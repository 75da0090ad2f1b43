"""The bus as a port: publish change events, subscribe from a position. Implementations: memory, NATS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from events.model import ChangeEvent


class BusError(Exception):
    """The bus cannot carry events now; the message says why and what to do."""


class BusUnavailable(BusError):
    """The bus is down, unreachable or not provisioned."""


class SubscriberTooSlow(BusError):
    """A subscriber fell further behind than its bound allows: its subscription is ended, memory is not grown."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event with its position on the bus: subscribe `after` it to resume right behind it."""

    sequence: int
    event: ChangeEvent


class Deliveries:
    """A subscription's unread events, bounded: one more than `max_pending` ends it with SubscriberTooSlow
    (read after what came before), never a longer queue. Both buses' subscriptions read from one."""

    def __init__(self, max_pending: int) -> None:
        self.queue: asyncio.Queue[Delivery | BaseException] = asyncio.Queue()
        self.max_pending = max_pending
        self.closed = False

    def offer(self, delivery: Delivery) -> bool:
        """Queue `delivery`; False when the subscription is (now) closed: the caller stops feeding it."""
        if self.closed:
            return False
        if self.queue.qsize() >= self.max_pending:
            self.closed = True
            self.queue.put_nowait(SubscriberTooSlow(
                f"the subscriber fell {self.max_pending} events behind; subscribe again after the last one read"))
            return False
        self.queue.put_nowait(delivery)
        return True

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    async def publish(self, event: ChangeEvent) -> int:
        """Publish once (a second publish of the same event id is dropped); returns the event's sequence."""
        ...

    async def subscribe(self, *, after: int | None = None, max_pending: int = 1_000) -> Subscription:
        """Every event after `after` (None: from now on), in order, at most `max_pending` waiting unread."""
        ...

    async def close(self) -> None: ...
