"""The replay buffer of streamed generations, in this process and in a real Redis: what
a reader gets after a given index, the grace period without readers, and a generation
whose producer is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import redis.asyncio as redis

from gateway.replay.events import ReplayEvent, StreamOwner, parse_event_id
from gateway.replay.hub import GenerationHub
from gateway.replay.local import LocalReplay
from gateway.replay.shared import SharedReplay
from switchyard.processes import free_port

OWNER = StreamOwner("key:test", "summary")
WAIT_S = 60  # only a bound on waiting for an event that must come


def lost(message: str) -> ReplayEvent:
    return ReplayEvent(message, "error", last=True)


class EndlessSource:
    """Events until closed, one each time ``step`` is set; records that it was closed."""

    def __init__(self) -> None:
        self.step = asyncio.Event()
        self.closed = asyncio.Event()

    async def events(self) -> AsyncGenerator[ReplayEvent, None]:
        try:
            n = 0
            while True:
                await self.step.wait()
                self.step.clear()
                yield ReplayEvent(f"t{n}", "token")
                n += 1
        finally:
            self.closed.set()


async def take(events: AsyncIterator[ReplayEvent], count: int) -> list[ReplayEvent]:
    taken = []
    async for event in events:
        taken.append(event)
        if len(taken) == count:
            break
    return taken


async def test_a_generation_without_readers_is_cancelled_after_the_grace_period() -> None:
    hub = GenerationHub(LocalReplay(ttl_s=60), None, grace_s=0.05)
    source = EndlessSource()
    await hub.start("gen_a", OWNER, source.events(), lost)
    reader = hub.read("gen_a", -1, lost)
    source.step.set()
    first = await asyncio.wait_for(anext(reader), WAIT_S)
    assert (first.data, first.index) == ("t0", 0)
    await reader.aclose()  # the client goes away
    await asyncio.wait_for(source.closed.wait(), WAIT_S)
    # A reconnect after the cancel gets what was generated, then the lost event.
    late = await asyncio.wait_for(take(hub.read("gen_a", -1, lost), 10), WAIT_S)
    assert [e.data for e in late[:1]] == ["t0"]
    assert late[-1].last and late[-1].event == "error"
    await hub.close()


async def test_a_failing_generation_ends_its_stream_with_the_lost_event() -> None:
    async def failing() -> AsyncGenerator[ReplayEvent, None]:
        yield ReplayEvent("t0", "token")
        raise RuntimeError("backend broke")

    hub = GenerationHub(LocalReplay(ttl_s=60), None, grace_s=30)
    await hub.start("gen_b", OWNER, failing(), lost)
    events = await asyncio.wait_for(take(hub.read("gen_b", -1, lost), 10), WAIT_S)
    assert [(e.data, e.index) for e in events[:1]] == [("t0", 0)]
    assert events[-1].last and events[-1].index == 1
    assert [e.index for e in await take(hub.read("gen_b", 0, lost), 10)] == [1]
    assert await take(hub.read("gen_b", 1, lost), 10) == [], "nothing after the last event"
    await hub.close()


async def test_redis_replays_after_an_index_then_tells_when_the_producer_is_gone(
    client: redis.Redis,
) -> None:
    shared = SharedReplay(client, ttl_s=60, live_s=0.2, grace_s=1)
    await shared.begin("gen_c", OWNER)
    assert await shared.owner("gen_c") == OWNER
    for index in range(3):
        await shared.append("gen_c", ReplayEvent(f"t{index}", "token", index=index))
    # No final event, and the producer's key lapses (its replica died): the reader gets
    # what there was after index 0, then the lost event, instead of waiting forever.
    events = await asyncio.wait_for(take(shared.read("gen_c", 0, lost), 10), WAIT_S)
    assert [e.data for e in events[:2]] == ["t1", "t2"]
    assert [e.index for e in events[:2]] == [1, 2]
    assert events[-1].last and "stopped" in events[-1].data
    assert await client.exists("switchyard:replay:gen_c:readers"), "the reader was seen"


async def test_redis_replay_of_an_ended_generation_stops_at_its_last_event(
    client: redis.Redis,
) -> None:
    shared = SharedReplay(client, ttl_s=60, live_s=30, grace_s=1)
    await shared.begin("gen_d", OWNER)
    await shared.append("gen_d", ReplayEvent("t0", "token", index=0))
    await shared.append("gen_d", ReplayEvent("{}", "done", last=True, index=1))
    assert [e.event for e in await take(shared.read("gen_d", -1, lost), 10)] == ["token", "done"]
    assert await take(shared.read("gen_d", 1, lost), 10) == []
    assert await shared.owner("gen_unknown") is None


def test_event_ids_name_their_generation() -> None:
    assert parse_event_id("gen_abc-_d.17") == ("gen_abc-_d", 17)
    for other in ("17", "gen_abc", "gen_abc.x", "abc.3", "gen_abc.-1", ""):
        assert parse_event_id(other) is None


async def test_an_unreachable_redis_costs_resume_elsewhere_not_the_stream() -> None:
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.5)

    async def three() -> AsyncGenerator[ReplayEvent, None]:
        yield ReplayEvent("t0", "token")
        yield ReplayEvent("t1", "token")
        yield ReplayEvent("{}", "done", last=True)

    shared = SharedReplay(unreachable, ttl_s=60, live_s=5, grace_s=1)
    hub = GenerationHub(LocalReplay(ttl_s=60), shared, grace_s=30)
    await hub.start("gen_e", OWNER, three(), lost)
    events = await asyncio.wait_for(take(hub.read("gen_e", -1, lost), 10), WAIT_S)
    assert [e.data for e in events] == ["t0", "t1", "{}"]
    await hub.close()
    await unreachable.aclose()
