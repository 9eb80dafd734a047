"""The batch jobs' records in Redis, shared by every gateway replica: files and batches
as hashes and strings that expire with them, each owner's batches in a sorted set (for
pages, newest first), and the runnable set whose scores are lease deadlines.

Every key shares the ``{jobs}`` hash tag, so the scripts may touch several under Redis
Cluster. The scripts are the ``.lua`` files beside this module.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis.asyncio as redis

from gateway.jobs.records import BatchRecord, FileRecord, decode, now_s, progress_fields, text

_HERE = Path(__file__).parent
CLAIM_LUA = (_HERE / "claim.lua").read_text(encoding="utf-8")
RENEW_LUA = (_HERE / "renew.lua").read_text(encoding="utf-8")
SAVE_LUA = (_HERE / "save.lua").read_text(encoding="utf-8")
CANCEL_LUA = (_HERE / "cancel.lua").read_text(encoding="utf-8")
RELEASE_LUA = (_HERE / "release.lua").read_text(encoding="utf-8")

PREFIX = "sy:{jobs}:"
RUNNABLE = PREFIX + "runnable"
ALL_BATCHES = PREFIX + "batches"
LEASE = PREFIX + "lease:"

KEPT_AFTER_END_S = 30 * 86_400
"""How long a batch's record outlives its completion window (its results' files expire
on their own setting)."""


def _file(file_id: str) -> str:
    return f"{PREFIX}file:{file_id}"


def _files_of(owner: str) -> str:
    return f"{PREFIX}files:{owner}"


def _batch(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}"


def _batches_of(owner: str) -> str:
    return f"{PREFIX}batches:{owner}"


def _open_of(owner: str) -> str:
    return f"{PREFIX}open:{owner}"


class RedisJobStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._claim = client.register_script(CLAIM_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._save = client.register_script(SAVE_LUA)
        self._cancel = client.register_script(CANCEL_LUA)
        self._release = client.register_script(RELEASE_LUA)

    async def put_file(self, record: FileRecord) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(_file(record.id), record.dumps(), exat=record.expires_at)
            pipe.zadd(_files_of(record.owner), {record.id: time.time()})
            await pipe.execute()

    async def get_file(self, file_id: str) -> FileRecord | None:
        raw = await self.client.get(_file(file_id))
        return FileRecord.loads(raw) if raw is not None else None

    async def delete_file(self, file_id: str) -> bool:
        record = await self.get_file(file_id)
        if record is None:
            return False
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(_file(file_id))
            pipe.zrem(_files_of(record.owner), file_id)
            await pipe.execute()
        return True

    async def list_files(self, owner: str) -> list[FileRecord]:
        ids = [text(i) for i in await self.client.zrevrange(_files_of(owner), 0, -1)]
        found = await self.client.mget([_file(i) for i in ids]) if ids else []
        gone = [i for i, raw in zip(ids, found, strict=True) if raw is None]
        if gone:
            await self.client.zrem(_files_of(owner), *gone)
        return [FileRecord.loads(raw) for raw in found if raw is not None]

    async def create_batch(self, record: BatchRecord, max_open: int | None) -> bool:
        # Checked, then added: two batches created at the same instant may both pass a
        # limit that was one away; the limit is a bound on work, not on money.
        if max_open is not None and await self.client.scard(_open_of(record.owner)) >= max_open:
            return False
        key = _batch(record.id)
        score = time.time()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record.fields())  # type: ignore[arg-type]
            pipe.expireat(key, record.expires_at + KEPT_AFTER_END_S)
            pipe.zadd(_batches_of(record.owner), {record.id: score})
            pipe.zadd(ALL_BATCHES, {record.id: score})
            pipe.sadd(_open_of(record.owner), record.id)
            pipe.zadd(RUNNABLE, {record.id: 0})
            await pipe.execute()
        return True

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        raw = decode(await self.client.hgetall(_batch(batch_id)))
        return BatchRecord.from_fields(raw) if raw else None

    async def list_batches(
        self, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        index = ALL_BATCHES if owner is None else _batches_of(owner)
        start = 0
        if after is not None:
            rank = await self.client.zrevrank(index, after)
            if not isinstance(rank, int):
                return [], False
            start = rank + 1
        found: list[BatchRecord] = []
        while len(found) <= limit:
            ids = [text(i) for i in await self.client.zrevrange(index, start, start + limit)]
            if not ids:
                break
            start += len(ids)
            for batch_id in ids:
                record = await self.get_batch(batch_id)
                if record is None:
                    await self.client.zrem(index, batch_id)  # expired
                    start -= 1
                else:
                    found.append(record)
        return found[:limit], len(found) > limit

    async def cancel(self, batch_id: str) -> bool:
        return bool(await self._cancel(keys=[_batch(batch_id)], args=[now_s()]))

    async def claim(self, worker: str, lease_s: float) -> str | None:
        args: list[str | int] = [int(lease_s * 1000), worker, LEASE, _batch("")]
        found = await self._claim(keys=[RUNNABLE], args=args)
        return found.decode() if isinstance(found, bytes) else None

    async def renew(self, batch_id: str, worker: str, lease_s: float) -> bool:
        keys = [RUNNABLE, LEASE + batch_id]
        return bool(await self._renew(keys=keys, args=[batch_id, worker, int(lease_s * 1000)]))

    async def save(
        self, record: BatchRecord, worker: str, status: str = "", final: bool = False
    ) -> int:
        keys = [LEASE + record.id, _batch(record.id), RUNNABLE, _open_of(record.owner)]
        pairs = [part for item in progress_fields(record).items() for part in item]
        args = [worker, record.id, "1" if final else "0", status, *pairs]
        return int(await self._save(keys=keys, args=args))

    async def release(self, batch_id: str, worker: str) -> None:
        await self._release(keys=[LEASE + batch_id, RUNNABLE], args=[worker, batch_id])
