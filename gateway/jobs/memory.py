"""The batch jobs' records in this process, for a gateway without Redis: the same
behaviour as ``gateway.jobs.store`` for one replica (leases still expire, so a runner that
stalls gives its batch up as it would across replicas)."""

from __future__ import annotations

import time

from gateway.jobs.interfaces import CANCEL_ASKED, LOST, SAVED
from gateway.jobs.records import FINAL, BatchRecord, FileRecord, now_s


class MemoryJobStore:
    def __init__(self) -> None:
        self._files: dict[str, FileRecord] = {}
        self._batches: dict[str, BatchRecord] = {}
        self._order: list[str] = []
        """Batch ids, oldest first."""
        self._leases: dict[str, tuple[str, float]] = {}
        """Batch id: (worker, lease deadline on the monotonic clock)."""
        self._runnable: set[str] = set()

    async def put_file(self, record: FileRecord) -> None:
        self._files[record.id] = record

    async def get_file(self, file_id: str) -> FileRecord | None:
        record = self._files.get(file_id)
        if record is not None and record.expires_at <= now_s():
            del self._files[file_id]
            return None
        return record

    async def delete_file(self, file_id: str) -> bool:
        return self._files.pop(file_id, None) is not None

    async def list_files(self, owner: str) -> list[FileRecord]:
        mine = [r for r in list(self._files.values()) if r.owner == owner]
        live = [r for r in mine if await self.get_file(r.id) is not None]
        return sorted(live, key=lambda r: r.created_at, reverse=True)

    async def create_batch(self, record: BatchRecord, max_open: int | None) -> bool:
        open_now = sum(
            1 for r in self._batches.values() if r.owner == record.owner and r.id in self._runnable
        )
        if max_open is not None and open_now >= max_open:
            return False
        self._batches[record.id] = record
        self._order.append(record.id)
        self._runnable.add(record.id)
        return True

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        record = self._batches.get(batch_id)
        if record is None:
            return None
        # A copy, as Redis would give: the caller's changes are not the store's.
        return BatchRecord.from_fields(record.fields())

    async def list_batches(
        self, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        ids = [i for i in reversed(self._order) if owner is None or self._batches[i].owner == owner]
        if after is not None:
            if after not in ids:
                return [], False
            ids = ids[ids.index(after) + 1 :]
        page = [BatchRecord.from_fields(self._batches[i].fields()) for i in ids[: limit + 1]]
        return page[:limit], len(page) > limit

    async def cancel(self, batch_id: str) -> bool:
        record = self._batches.get(batch_id)
        if record is None:
            return False
        if record.status in ("validating", "in_progress", "finalizing"):
            record.cancel = True
            record.status = "cancelling"
            record.times["cancelling_at"] = now_s()
        return True

    async def claim(self, worker: str, lease_s: float) -> str | None:
        now = time.monotonic()
        for batch_id in self._order:
            if batch_id not in self._runnable:
                continue
            held = self._leases.get(batch_id)
            if held is None or held[1] <= now:
                self._leases[batch_id] = (worker, now + lease_s)
                return batch_id
        return None

    def _holds(self, batch_id: str, worker: str) -> bool:
        held = self._leases.get(batch_id)
        return held is not None and held[0] == worker and held[1] > time.monotonic()

    async def renew(self, batch_id: str, worker: str, lease_s: float) -> bool:
        if not self._holds(batch_id, worker):
            return False
        self._leases[batch_id] = (worker, time.monotonic() + lease_s)
        return True

    async def save(
        self, record: BatchRecord, worker: str, status: str = "", final: bool = False
    ) -> int:
        kept = self._batches.get(record.id)
        if kept is None or not self._holds(record.id, worker):
            return LOST
        answer = CANCEL_ASKED if kept.cancel else SAVED
        if status and (answer == SAVED or status in FINAL):
            kept.status = status
        for name in ("total", "completed", "failed", "line", "parts"):
            setattr(kept, name, getattr(record, name))
        kept.output_file_id = record.output_file_id
        kept.error_file_id = record.error_file_id
        kept.errors = record.errors
        kept.times.update(record.times)
        if final:
            self._runnable.discard(record.id)
            self._leases.pop(record.id, None)
        return answer

    async def release(self, batch_id: str, worker: str) -> None:
        if self._holds(batch_id, worker):
            del self._leases[batch_id]
