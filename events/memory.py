"""The in-process bus: the default, for one gateway process (the demo needs nothing else)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from events.bus import Delivery, SubscriberTooSlow
from events.model import ChangeEvent

#: Event ids remembered to drop a second publish, and events kept for a subscriber resuming `after` one.
DEDUPE_WINDOW = 10_000
KEPT = 10_000


class _Subscription:
    def __init__(self, bus: MemoryBus, max_pending: int) -> None:
        self.bus = bus
        self.queue: asyncio.Queue[Delivery | BaseException] = asyncio.Queue()
        self.max_pending = max_pending
        self.closed = False

    def offer(self, delivery: Delivery) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.max_pending:
            # Bounded: a subscriber that cannot keep up is ended with a clear error, never given more memory.
            self.closed = True
            self.bus._subscribers.discard(self)
            self.queue.put_nowait(SubscriberTooSlow(
                f"the subscriber fell {self.max_pending} events behind; subscribe again after the last one read"))
            return
        self.queue.put_nowait(delivery)

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self.closed = True
        self.bus._subscribers.discard(self)


class MemoryBus:
    """Events in this process's memory: subscribers get each one in order, with a sequence number."""

    def __init__(self) -> None:
        self._sequence = 0
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._kept: deque[Delivery] = deque(maxlen=KEPT)
        self._subscribers: set[_Subscription] = set()

    async def publish(self, event: ChangeEvent) -> int:
        found = self._seen.get(event.id)
        if found is not None:
            return found
        self._sequence += 1
        delivery = Delivery(self._sequence, event)
        self._seen[event.id] = self._sequence
        while len(self._seen) > DEDUPE_WINDOW:
            self._seen.popitem(last=False)
        self._kept.append(delivery)
        for subscriber in list(self._subscribers):
            subscriber.offer(delivery)
        return self._sequence

    async def subscribe(self, *, after: int | None = None, max_pending: int = 1_000) -> _Subscription:
        subscription = _Subscription(self, max_pending)
        if after is not None:
            for delivery in self._kept:
                if delivery.sequence > after:
                    subscription.offer(delivery)
        if not subscription.closed:
            self._subscribers.add(subscription)
        return subscription

    async def close(self) -> None:
        for subscriber in list(self._subscribers):
            await subscriber.close()
