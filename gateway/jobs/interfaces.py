"""What the batch jobs keep and share between replicas, as an interface: the records of
files and batches, who owns them, and the leases by which one replica at a time runs a
batch. ``gateway.jobs.store`` keeps them in Redis, ``gateway.jobs.memory`` in this
process."""

from __future__ import annotations

from typing import Protocol

from gateway.jobs.records import BatchRecord, FileRecord

SAVED = 1
"""``save``: written."""
LOST = 0
"""``save``: not written, the lease is another worker's now."""
CANCEL_ASKED = 2
"""``save``: written, and a cancel was asked for."""


class JobStorage(Protocol):
    async def put_file(self, record: FileRecord) -> None:
        """Keep a file's record until it expires (``expires_at``)."""
        ...

    async def get_file(self, file_id: str) -> FileRecord | None: ...

    async def delete_file(self, file_id: str) -> bool:
        """Forget a file's record; False if there was none."""
        ...

    async def list_files(self, owner: str) -> list[FileRecord]:
        """The owner's files, newest first."""
        ...

    async def create_batch(self, record: BatchRecord, max_open: int | None) -> bool:
        """Keep a new batch and make it runnable; False (nothing kept) when its owner
        has ``max_open`` batches open already."""
        ...

    async def get_batch(self, batch_id: str) -> BatchRecord | None: ...

    async def list_batches(
        self, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        """A page of batches, newest first, after the batch ``after``: the owner's, or
        everyone's (``owner`` None); and whether more follow."""
        ...

    async def cancel(self, batch_id: str) -> bool:
        """Ask an open batch to stop; False if there is no such batch."""
        ...

    async def claim(self, worker: str, lease_s: float) -> str | None:
        """A runnable batch nobody holds (or whose holder's lease ran out), now leased to
        ``worker``; None when there is none."""
        ...

    async def renew(self, batch_id: str, worker: str, lease_s: float) -> bool:
        """Extend the lease; False when it is no longer ``worker``'s."""
        ...

    async def save(
        self, record: BatchRecord, worker: str, status: str = "", final: bool = False
    ) -> int:
        """Write the runner's fields (``records.progress_fields``) and, unless a cancel
        was asked for, the status; ``final`` ends the batch (not runnable, not open, no
        lease). ``SAVED``, ``LOST`` or ``CANCEL_ASKED``."""
        ...

    async def release(self, batch_id: str, worker: str) -> None:
        """Give up the lease: another replica may claim the batch at once."""
        ...
