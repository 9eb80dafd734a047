"""One batch, run by the replica holding its lease, from its last checkpoint to its end.

Its requests run a chunk of lines at a time. A chunk's answers are written as one part
(named by the chunk's number), and only then is the checkpoint saved (lines done, parts
written, counts), under the lease. A replica that dies mid-chunk leaves a part that the
next one writes again whole, from the same lines, under the same name: every
``custom_id`` is answered exactly once in the output. At the end the parts are joined,
in order, into the output and error files, so answers keep the input's order.

Each chunk reserves its lines of the caller's daily quota first. Once the quota is spent,
every line left is answered in the error file with ``rate_limited`` and the batch
completes: a job never fails a line for the per-minute limit, which it is not held to.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.access.auth import Caller
from gateway.access.internal import InternalCallers
from gateway.jobs.dispatch import InProcessSender, answer_line, error_line
from gateway.jobs.files import FileStorage
from gateway.jobs.input_file import BadLine, JobLine, job_lines, validate
from gateway.jobs.interfaces import CANCEL_ASKED, LOST, JobStorage
from gateway.jobs.records import FINAL, BatchRecord, FileRecord, now_s
from gateway.limits.interfaces import LimitStorage
from gateway.limits.tiers import TierLimits

log = logging.getLogger(__name__)

GENERATING = ("/v1/summarize", "/v1/chat/completions", "/v1/completions")
CONCURRENCY = dict.fromkeys(GENERATING, 2)
"""Lines of one batch in flight at once, by route; the others: ``DEFAULT_CONCURRENCY``.
A generation holds the summarizer for seconds, so two are enough to keep it busy."""
DEFAULT_CONCURRENCY = 32


class LostLease(Exception):
    """Another replica holds the batch now: this one stops without writing more."""


@dataclass(frozen=True)
class JobContext:
    """What running a batch needs from the gateway."""

    store: JobStorage
    files: FileStorage
    sender: InProcessSender
    internal: InternalCallers
    limiter: LimitStorage
    files_ttl_s: int
    max_requests: int
    on_end: Callable[[BatchRecord], Awaitable[None]]


def input_name(file_id: str) -> str:
    return f"files/{file_id}"


def part_name(batch_id: str, part: int, kind: str) -> str:
    return f"parts/{batch_id}/{part:06d}.{kind}"


def result_file_id(batch_id: str, kind: str) -> str:
    """The same id whichever replica finalizes (again): a second run replaces the first."""
    return "file-" + hashlib.sha256(f"{batch_id}\n{kind}".encode()).hexdigest()[:24]


def caller_of(record: BatchRecord) -> Caller:
    c = record.caller
    return Caller(c.id, c.owner, frozenset(c.roles), c.tier, TierLimits(**c.limits))


async def _dumped(answers: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield b"".join(json.dumps(a, separators=(",", ":")).encode() + b"\n" for a in answers)


class BatchRun:
    def __init__(self, ctx: JobContext, record: BatchRecord, worker: str) -> None:
        self.ctx = ctx
        self.record = record
        self.worker = worker
        self.cancelled = False
        self.quota_spent = False
        self.expired = False

    async def save(self, status: str = "", final: bool = False) -> None:
        answer = await self.ctx.store.save(self.record, self.worker, status, final)
        if answer == LOST:
            raise LostLease(self.record.id)
        if answer == CANCEL_ASKED:
            self.cancelled = True
        if status and (answer != CANCEL_ASKED or status in FINAL):
            self.record.status = status  # as saved, for the webhook's copy

    async def run(self) -> None:
        record = self.record
        if record.status in FINAL:
            await self.save(record.status, final=True)
            return
        if record.status == "validating" and not record.cancel and not await self._validate():
            return
        self.cancelled = self.cancelled or record.cancel
        if record.status != "finalizing" and not self.cancelled:
            try:
                await self._answer_lines()
            except FileNotFoundError:
                await self._fail("file_not_found", "the input file was deleted while it ran")
                return
        await self._finalize()

    async def _fail(self, code: str, message: str) -> None:
        self.record.errors = [{"code": code, "message": message}]
        self.record.times["failed_at"] = now_s()
        await self.save("failed", final=True)
        await self.ctx.files.delete(f"parts/{self.record.id}/")
        await self.ctx.on_end(self.record)

    async def _validate(self) -> bool:
        record = self.record
        name = input_name(record.input_file_id)
        try:
            record.total = await validate(
                self.ctx.files, name, record.endpoint, self.ctx.max_requests
            )
        except BadLine as bad:
            record.errors = [bad.public()]
            record.times["failed_at"] = now_s()
            await self.save("failed", final=True)
            await self.ctx.on_end(record)
            return False
        except FileNotFoundError:
            await self._fail("file_not_found", "the input file is gone")
            return False
        record.times["in_progress_at"] = now_s()
        await self.save("in_progress")
        return True

    async def _answer_lines(self) -> None:
        record = self.record
        token = self.ctx.internal.mint(caller_of(record))
        concurrency = CONCURRENCY.get(record.endpoint, DEFAULT_CONCURRENCY)
        chunk: list[JobLine] = []
        try:
            seen = 0
            lines = job_lines(self.ctx.files, input_name(record.input_file_id), record.endpoint)
            async for line in lines:
                seen += 1
                if seen <= record.line:
                    continue  # answered before the checkpoint
                chunk.append(line)
                if len(chunk) == 2 * concurrency:
                    await self._chunk(chunk, token, concurrency)
                    chunk = []
                    if self.cancelled:
                        return
            if chunk:
                await self._chunk(chunk, token, concurrency)
        finally:
            self.ctx.internal.forget(token)

    async def _chunk(self, chunk: list[JobLine], token: str, concurrency: int) -> None:
        record = self.record
        if now_s() >= record.expires_at:
            self.expired = True
            why = "the batch expired"
            answers = [error_line(record.id, ln, "batch_expired", why) for ln in chunk]
        else:
            granted = await self._reserve(len(chunk))
            gate = asyncio.Semaphore(concurrency)

            async def one(line: JobLine) -> dict[str, Any]:
                async with gate:
                    return answer_line(record.id, line, await self.ctx.sender.send(line, token))

            sent = await asyncio.gather(*(one(line) for line in chunk[:granted]))
            limit = caller_of(record).limits.per_day
            spent = f"the daily quota of {limit} requests ran out"
            left = chunk[granted:]
            answers = [*sent, *(error_line(record.id, ln, "rate_limited", spent) for ln in left)]
        good = [a for a in answers if a["error"] is None]
        bad = [a for a in answers if a["error"] is not None]
        await self.ctx.files.write(part_name(record.id, record.parts, "out"), _dumped(good))
        await self.ctx.files.write(part_name(record.id, record.parts, "err"), _dumped(bad))
        record.parts += 1
        record.line += len(chunk)
        record.completed += len(good)
        record.failed += len(bad)
        await self.save()

    async def _reserve(self, wanted: int) -> int:
        """Lines of the chunk the daily quota allows (all when there is no daily cap)."""
        caller = caller_of(self.record)
        per_day = caller.limits.per_day
        if per_day is None or self.quota_spent:
            return 0 if self.quota_spent else wanted
        granted = await self.ctx.limiter.reserve_day(caller.id, per_day, wanted)
        self.quota_spent = granted < wanted
        return granted

    async def _finalize(self) -> None:
        record = self.record
        if record.status != "finalizing" and not self.cancelled:
            record.times["finalizing_at"] = now_s()
            await self.save("finalizing")
        for kind, count in (("out", record.completed), ("err", record.failed)):
            if count == 0:
                continue
            file_id = result_file_id(record.id, kind)
            size = await self.ctx.files.write(input_name(file_id), self._joined(kind))
            purpose = "batch_output"
            now = now_s()
            suffix = "output" if kind == "out" else "errors"
            await self.ctx.store.put_file(
                FileRecord(
                    file_id,
                    record.owner,
                    f"{record.id}_{suffix}.jsonl",
                    purpose,
                    size,
                    now,
                    now + self.ctx.files_ttl_s,
                )
            )
            if kind == "out":
                record.output_file_id = file_id
            else:
                record.error_file_id = file_id
        status = "cancelled" if self.cancelled else "expired" if self.expired else "completed"
        record.times[f"{status}_at"] = now_s()
        await self.save(status, final=True)
        await self.ctx.files.delete(f"parts/{record.id}/")
        await self.ctx.on_end(record)

    async def _joined(self, kind: str) -> AsyncIterator[bytes]:
        for part in range(self.record.parts):
            # Parts are removed only once the batch's end is saved: all are there.
            async for chunk in self.ctx.files.read(part_name(self.record.id, part, kind)):
                yield chunk
