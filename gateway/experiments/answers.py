"""Which model version answered each caller's request, so that an outcome the caller
reports later (``POST /v1/feedback``) is attributed to it.

Never written on a request's path: answers are noted in memory and written to Redis in
one pipeline a second (``run``), where they live ``ttl_s``. The most recent answers are
also kept in this process, so that a report right after its answer needs no round trip:
``RECENT`` of them beside Redis, ``max_local`` without it (where they are all there is).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import redis.asyncio as redis

from switchyard.flush_loop import flush_every

log = logging.getLogger(__name__)

Answer = tuple[str, str]
"""(model, version)."""

RECENT = 10_000
"""Answers kept in memory beside Redis (about 3 MB)."""


class AnswerLog:
    def __init__(
        self,
        client: redis.Redis | None,
        *,
        ttl_s: int = 7 * 86400,
        prefix: str = "sy:answered:",
        max_local: int = 100_000,
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._prefix = prefix
        self._max_local = max_local if client is None else min(max_local, RECENT)
        self._pending: dict[tuple[str, str], Answer] = {}
        self._local: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        """Recent answers (all of them without Redis): a lookup needs no round trip."""

    def note(self, caller: str, request_id: str, model: str, version: str) -> None:
        if not (caller and request_id and model and version):
            return
        key = (caller, request_id)
        self._local[key] = (model, version)
        self._local.move_to_end(key)
        if self._client is not None:
            self._pending[key] = (model, version)
        while len(self._local) > self._max_local:
            self._local.popitem(last=False)

    async def find(self, caller: str, request_id: str) -> Answer | None:
        found = self._local.get((caller, request_id))
        if found is not None or self._client is None:
            return found
        stored = await self._client.get(self._key(caller, request_id))
        if stored is None:
            return None
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        model, _, version = text.partition("\t")
        return model, version

    async def flush(self) -> None:
        if self._client is None:
            return
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for (caller, request_id), (model, version) in batch.items():
                    pipe.set(self._key(caller, request_id), f"{model}\t{version}", ex=self._ttl_s)
                await pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError):
            if len(self._pending) < self._max_local:  # kept for the next flush
                self._pending = batch | self._pending

    async def run(self, interval_s: float = 1.0) -> None:
        """Flush every ``interval_s`` until cancelled, then once more if Redis lets."""
        await flush_every(
            self.flush, interval_s, log, "answer log: flush failed; its answers are dropped"
        )

    def _key(self, caller: str, request_id: str) -> str:
        return f"{self._prefix}{caller}:{request_id}"
