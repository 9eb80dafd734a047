"""Generations kept for replay in Redis, so that a client resumes through any replica.

Each generation is a Redis Stream whose entry ids are the events' indexes (``<index+1>-0``)
so that "after index k" is a plain ``XREAD`` from ``<k+1>-0``; beside it, a hash with its
owner, a key the producing replica keeps alive while it generates, and a key each reader
on another replica keeps alive while it reads (the producer's grace period looks at it).
Everything expires by itself (``ttl_s`` after the last write).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import redis.asyncio as redis

from gateway.replay.events import LostEvent, ReplayEvent, StreamOwner

PREFIX = "switchyard:replay:"
MAX_EVENTS = 4096
"""Entries kept per generation: more than any token limit allows."""
BLOCK_MS = 250
"""Longest wait of one XREAD: below the client's socket timeout, so a wait is not an error."""


def _key(generation: str, part: str = "") -> str:
    return f"{PREFIX}{generation}{part}"


class SharedReplay:
    def __init__(self, client: redis.Redis, ttl_s: float, live_s: float, grace_s: float) -> None:
        self._client = client
        self._ttl_ms = int(ttl_s * 1000)
        self._live_ms = int(live_s * 1000)
        self._grace_ms = int(grace_s * 1000)

    async def begin(self, generation: str, owner: StreamOwner) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hset(
                _key(generation, ":owner"),
                mapping={"caller": owner.caller, "kind": owner.kind, "cred": owner.credential},
            )
            pipe.pexpire(_key(generation, ":owner"), self._ttl_ms)
            pipe.set(_key(generation, ":live"), 1, px=self._live_ms)
            await pipe.execute()

    async def append(self, generation: str, event: ReplayEvent) -> None:
        fields = {"d": event.data, "e": event.event or "", "l": int(event.last)}
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xadd(
                _key(generation),
                fields,  # type: ignore[arg-type]
                id=f"{event.index + 1}-0",
                maxlen=MAX_EVENTS,
                approximate=False,
            )
            pipe.pexpire(_key(generation), self._ttl_ms)
            if event.last:
                pipe.delete(_key(generation, ":live"))
            else:
                pipe.set(_key(generation, ":live"), 1, px=self._live_ms)
            await pipe.execute()

    async def keep_alive(self, generation: str) -> None:
        """Tell readers elsewhere that the producing replica still generates."""
        await self._client.set(_key(generation, ":live"), 1, px=self._live_ms, xx=True)

    async def owner(self, generation: str) -> StreamOwner | None:
        found: dict[bytes, bytes] = await self._client.hgetall(  # type: ignore[assignment]
            _key(generation, ":owner")
        )
        if not found:
            return None
        text = {k.decode(): v.decode() for k, v in found.items()}
        return StreamOwner(text["caller"], text["kind"], text.get("cred", ""))

    async def reader_present(self, generation: str) -> bool:
        return bool(await self._client.exists(_key(generation, ":readers")))

    async def read(
        self, generation: str, after: int, lost: LostEvent
    ) -> AsyncGenerator[ReplayEvent, None]:
        """The events after index ``after``, then each new one, to the last; the lost
        event if the producing replica stops keeping the generation alive first."""
        stream = _key(generation)
        tail: Entries = await self._client.xrevrange(stream, count=1)  # type: ignore[assignment]
        if tail and _event(*tail[0]).last and _event(*tail[0]).index <= after:
            return  # the client had every event already
        last_id = f"{after + 1}-0".encode()
        touched = 0.0
        while True:
            if time.monotonic() - touched > self._grace_ms / 3000:
                await self._client.set(_key(generation, ":readers"), 1, px=self._grace_ms)
                touched = time.monotonic()
            entries = await self._entries(stream, last_id, block=True)
            # Nothing new, and the producer's key gone: one more look, as the final event
            # may have landed just before the key went; else the producer stopped.
            if not entries and not await self._client.exists(_key(generation, ":live")):
                entries = await self._entries(stream, last_id, block=False)
                if not entries:
                    yield lost("the replica running the generation stopped; send it again")
                    return
            for entry_id, fields in entries:
                last_id = entry_id
                event = _event(entry_id, fields)
                yield event
                if event.last:
                    return

    async def _entries(self, stream: str, after_id: bytes, *, block: bool) -> Entries:
        found: list[tuple[bytes, Entries]] = await self._client.xread(  # type: ignore[assignment]
            {stream: after_id}, count=256, block=BLOCK_MS if block else None
        )
        return found[0][1] if found else []


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> ReplayEvent:
    return ReplayEvent(
        fields[b"d"].decode(),
        fields[b"e"].decode() or None,
        fields[b"l"] == b"1",
        int(entry_id.split(b"-")[0]) - 1,
    )
