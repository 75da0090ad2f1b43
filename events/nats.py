"""The bus on NATS JetStream: every gateway replica sees every event, and a replica that restarts resumes.

Events go to `<prefix>.<source>.<entity>` in one stream, with the event id as `Nats-Msg-Id`, so the
stream's duplicate window drops a producer's second publish of an event. Each subscription is an ordered
consumer (no state on the server, resumable from any stream sequence). The stream is provisioned at
deployment (`provision`, used by `gateway events provision`), never by request code: a gateway that finds
none refuses to start its bus with a message saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import NotFoundError

from events.bus import BusUnavailable, Deliveries, Delivery
from events.model import ChangeEvent, MalformedEvent

MSG_ID = "Nats-Msg-Id"


class _Subscription(Deliveries):
    def __init__(self, max_pending: int) -> None:
        super().__init__(max_pending)
        self.sub: Any = None

    async def on_message(self, msg: Msg) -> None:
        if self.closed:
            return
        try:
            event = ChangeEvent.decode(msg.data)
        except MalformedEvent:
            return  # not ours (another writer on the subjects): skipped, never a crash of the subscriber
        if not self.offer(Delivery(int(msg.metadata.sequence.stream), event)):
            await self.close()

    async def close(self) -> None:
        self.closed = True
        if self.sub is not None:
            with contextlib.suppress(NatsError):  # the connection is gone already: nothing left to stop
                await self.sub.unsubscribe()


class NatsBus:
    def __init__(self, client: Client, *, stream: str, prefix: str, timeout_s: float = 5.0) -> None:
        self.client = client
        self.js = client.jetstream(timeout=timeout_s)
        self.stream = stream
        self.prefix = prefix

    @classmethod
    async def connect(cls, url: str, *, stream: str, prefix: str, timeout_s: float = 5.0) -> NatsBus:
        """A bus on the server at `url`, whose stream must exist (BusUnavailable says what is wrong)."""
        try:
            # Bounded: the client keeps retrying a first connection it cannot make (it reconnects for ever
            # once connected, which is what a replica wants when the server restarts).
            async with asyncio.timeout(timeout_s * 2):
                client = await nats.connect(url, connect_timeout=timeout_s, max_reconnect_attempts=-1,
                                            allow_reconnect=True)
        except (OSError, NatsError, TimeoutError) as exc:
            raise BusUnavailable(f"NATS at {url} is unreachable: {type(exc).__name__}: {exc}") from exc
        bus = cls(client, stream=stream, prefix=prefix, timeout_s=timeout_s)
        try:
            await bus.js.stream_info(stream)
        except NotFoundError:
            await client.close()
            raise BusUnavailable(f"the JetStream stream {stream!r} does not exist: create it at deployment "
                                 "with `gateway events provision`") from None
        return bus

    @staticmethod
    async def provision(url: str, *, stream: str, prefix: str, duplicate_window_s: float = 120,
                        max_age_s: float = 7 * 86_400, timeout_s: float = 10) -> None:
        """Create (or update) the stream: file storage, the events of `max_age_s`, duplicates dropped within
        `duplicate_window_s` of each other."""
        async with asyncio.timeout(timeout_s):
            client = await nats.connect(url, connect_timeout=timeout_s, allow_reconnect=False,
                                        max_reconnect_attempts=0)
        try:
            config = api.StreamConfig(name=stream, subjects=[f"{prefix}.>"], storage=api.StorageType.FILE,
                                      duplicate_window=duplicate_window_s, max_age=max_age_s)
            js = client.jetstream()
            try:
                await js.stream_info(stream)
                await js.update_stream(config)
            except NotFoundError:
                await js.add_stream(config)
        finally:
            await client.close()

    async def publish(self, event: ChangeEvent) -> int:
        try:
            ack = await self.js.publish(event.subject(self.prefix), event.encode(), stream=self.stream,
                                        headers={MSG_ID: event.id})
        except (NatsError, TimeoutError, OSError) as exc:
            raise BusUnavailable(f"publishing to NATS failed: {type(exc).__name__}: {exc}") from exc
        return int(ack.seq)

    async def subscribe(self, *, after: int | None = None, max_pending: int = 1_000) -> _Subscription:
        subscription = _Subscription(max_pending)
        config = (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW) if after is None else
                  api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1))
        try:
            subscription.sub = await self.js.subscribe(f"{self.prefix}.>", stream=self.stream, config=config,
                                                       ordered_consumer=True, cb=subscription.on_message)
        except (NatsError, TimeoutError, OSError) as exc:
            raise BusUnavailable(f"subscribing on NATS failed: {type(exc).__name__}: {exc}") from exc
        return subscription

    async def close(self) -> None:
        if not self.client.is_closed:
            await self.client.drain()
