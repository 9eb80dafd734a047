"""The interfaces of the routing stores, each with a Redis implementation (shared by every
replica) and an in-process one (``gateway.routing.memory``) that follows the same rules:

- ``RoutingStorage``: routing tables, added backends and their audit trail
  (``RoutingStore`` in ``gateway.routing.store``);
- ``LiveCountStorage``: where the live figures' counters are added up
  (``RedisLiveCounts`` in ``gateway.routing.live_stats``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from gateway.routing.store import AddedBackend, AuditEntry, RoutingState
from gateway.routing.table import Rollout

Bucket = tuple[str, str, int]
"""A model, a version and a bucket number (whole ``bucket_s`` since the epoch)."""


class RoutingStorage(Protocol):
    async def revision(self) -> int:
        """The global revision: it rises with every change of any table or backend."""
        ...

    async def load(self) -> RoutingState:
        """Every table and added backend, read together."""
        ...

    async def get(self, model: str) -> Rollout | None:
        """The table of ``model``, if it has one."""
        ...

    async def change(self, before: Rollout | None, after: Rollout, entry: AuditEntry) -> bool:
        """Write ``after`` (audited) if the stored table is still ``before`` (by revision);
        False when another change came first, and then nothing is written."""
        ...

    async def add_backend(self, backend: AddedBackend, entry: AuditEntry) -> bool:
        """Add a backend address (audited); False if it was added already."""
        ...

    async def remove_backend(self, backend: AddedBackend, entry: AuditEntry) -> bool:
        """Remove an added backend address (audited); False if it was not added."""
        ...

    async def audit(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first, of one subject or of all."""
        ...


class LiveCountStorage(Protocol):
    async def add(self, batch: Mapping[Bucket, Mapping[str, int]], oldest: int) -> None:
        """Add counters (by bucket) to the shared ones; buckets before ``oldest`` may be
        dropped. Store errors propagate (the caller keeps the counts to add again)."""
        ...

    async def counts(
        self, model: str, versions: Sequence[str] | None, oldest: int, current: int
    ) -> dict[str, Iterable[tuple[str, int]]]:
        """The counters of ``versions`` of ``model`` (None: every version seen since
        ``oldest``) in the buckets ``oldest`` to ``current``, per version."""
        ...
