"""The change-event bus: in process, and on the machine's NATS JetStream (two buses stand for two replicas)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from events.bus import Bus, BusUnavailable, Delivery, SubscriberTooSlow
from events.memory import MemoryBus
from events.model import ChangeEvent, MalformedEvent
from events.nats import NatsBus


def event(key: str, kind: str = "StockChanged", **data: Any) -> ChangeEvent:
    return ChangeEvent(id=uuid.uuid4().hex, source="erp", entity="stock", key=key, kind=kind,
                       time="2026-12-01T10:00:00+00:00", data=data)


async def take(subscription: Any, n: int) -> list[Delivery]:
    got: list[Delivery] = []

    async def read() -> None:
        async for delivery in subscription:
            got.append(delivery)
            if len(got) == n:
                return

    await asyncio.wait_for(read(), 5)
    return got


Factory = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["memory", "nats"])
async def buses(request: pytest.FixtureRequest, nats_bus_names: tuple[str, str, str]
                ) -> AsyncIterator[tuple[str, Factory]]:
    """A way to open buses onto one shared bus: each call is another replica (the same object in memory)."""
    opened: list[Bus] = []
    if request.param == "memory":
        shared = MemoryBus()

        async def memory() -> Bus:
            return shared

        yield "memory", memory
        return
    url, stream, prefix = nats_bus_names
    await NatsBus.provision(url, stream=stream, prefix=prefix)

    async def on_nats() -> Bus:
        bus = await NatsBus.connect(url, stream=stream, prefix=prefix)
        opened.append(bus)
        return bus

    try:
        yield "nats", on_nats
    finally:
        for bus in opened:
            await bus.close()


async def test_a_subscriber_gets_every_event_in_order_with_its_sequence(buses: tuple[str, Factory]) -> None:
    _, open_bus = buses
    bus = await open_bus()
    subscription = await bus.subscribe()
    sent = [event(f"ITEM-{i}@WH1", onHand=i) for i in range(5)]
    sequences = [await bus.publish(e) for e in sent]
    got = await take(subscription, 5)
    assert [d.event for d in got] == sent
    assert [d.sequence for d in got] == sequences == sorted(sequences)
    await subscription.close()


async def test_an_event_published_by_one_replica_reaches_the_others(buses: tuple[str, Factory]) -> None:
    _, open_bus = buses
    one, other = await open_bus(), await open_bus()
    watching = await other.subscribe()
    sent = event("ITEM-9@WH2")
    await one.publish(sent)
    assert [d.event for d in await take(watching, 1)] == [sent]
    await watching.close()


async def test_a_second_publish_of_an_event_is_dropped(buses: tuple[str, Factory]) -> None:
    _, open_bus = buses
    bus = await open_bus()
    subscription = await bus.subscribe()
    first, retried, later = event("A@1"), None, event("B@1")
    retried = first  # a producer's retry after a crash: the same event id
    assert await bus.publish(first) == await bus.publish(retried)
    await bus.publish(later)
    assert [d.event.key for d in await take(subscription, 2)] == ["A@1", "B@1"]
    await subscription.close()


async def test_a_replica_resumes_after_the_last_event_it_read(buses: tuple[str, Factory]) -> None:
    _, open_bus = buses
    bus = await open_bus()
    first = await bus.publish(event("A@1"))
    await bus.publish(event("B@1"))
    await bus.publish(event("C@1"))
    restarted = await open_bus()  # a replica that read up to `first` before it went away
    subscription = await restarted.subscribe(after=first)
    assert [d.event.key for d in await take(subscription, 2)] == ["B@1", "C@1"]
    await subscription.close()


async def test_a_subscriber_that_falls_behind_is_ended_not_grown(buses: tuple[str, Factory]) -> None:
    _, open_bus = buses
    bus = await open_bus()
    slow = await bus.subscribe(max_pending=3)
    for i in range(10):
        await bus.publish(event(f"X{i}@1"))
    await asyncio.sleep(0.2)  # the NATS client delivers to the subscription in the background
    read: list[str] = []
    with pytest.raises(SubscriberTooSlow):
        async with asyncio.timeout(5):
            async for delivery in slow:
                read.append(delivery.event.key)
    assert read == ["X0@1", "X1@1", "X2@1"]


async def test_nats_unreachable_or_unprovisioned_is_a_clear_error(nats_bus_names: tuple[str, str, str]) -> None:
    url, stream, prefix = nats_bus_names
    with pytest.raises(BusUnavailable, match="unreachable"):
        await NatsBus.connect("nats://127.0.0.1:1", stream=stream, prefix=prefix, timeout_s=0.5)
    with pytest.raises(BusUnavailable, match="gateway events provision"):
        await NatsBus.connect(url, stream=stream, prefix=prefix)


def test_an_event_survives_its_bytes_and_garbage_is_refused() -> None:
    sent = event("ITEM-1@WH1", onHand=3)
    assert ChangeEvent.decode(sent.encode()) == sent
    for garbage in (b"", b"{}", b"[1]", b'{"id": 1}', b"\xff"):
        with pytest.raises(MalformedEvent):
            ChangeEvent.decode(garbage)


def test_the_cli_provisions_the_stream_a_bus_needs(nats_bus_names: tuple[str, str, str]) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    url, stream, prefix = nats_bus_names
    result = CliRunner().invoke(app, ["events", "provision", "--url", url, "--stream", stream, "--prefix", prefix])
    assert result.exit_code == 0, result.output
    assert f"stream {stream} ready" in result.output

    async def connects() -> None:
        bus = await NatsBus.connect(url, stream=stream, prefix=prefix)
        await bus.close()

    asyncio.run(connects())
    refused = CliRunner().invoke(app, ["events", "provision", "--url", "nats://127.0.0.1:1", "--stream", stream,
                                       "--timeout", "1"])
    assert refused.exit_code == 1 and "could not provision" in refused.output
