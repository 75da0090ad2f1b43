"""The in-process bus: the default, for one gateway process (the demo needs nothing else)."""

from __future__ import annotations

from collections import OrderedDict, deque

from events.bus import Deliveries, Delivery
from events.model import ChangeEvent

#: Event ids remembered to drop a second publish, and events kept for a subscriber resuming `after` one.
DEDUPE_WINDOW = 10_000
KEPT = 10_000


class _Subscription(Deliveries):
    def __init__(self, bus: MemoryBus, max_pending: int) -> None:
        super().__init__(max_pending)
        self.bus = bus

    def offer(self, delivery: Delivery) -> bool:
        if not super().offer(delivery):
            self.bus._subscribers.discard(self)
            return False
        return True

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
