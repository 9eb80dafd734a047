"""The routing stores kept in this process, for a gateway with no Redis at all: the routing
state (the same compare-and-set on each table's revision, the same global revision and
audit trail) and the live figures' counters, for one process only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from gateway.routing.interfaces import Bucket
from gateway.routing.store import AUDIT_KEPT, AddedBackend, AuditEntry, RoutingState
from gateway.routing.table import Rollout


class MemoryRoutingStore:
    """The same rules in one process, for a gateway without Redis (a ``RoutingStorage``)."""

    def __init__(self) -> None:
        self._global = 0
        self._rollouts: dict[str, Rollout] = {}
        self._added: dict[str, AddedBackend] = {}
        self._entries: list[AuditEntry] = []

    async def revision(self) -> int:
        return self._global

    async def load(self) -> RoutingState:
        backends = sorted(self._added.values(), key=lambda b: (b.service, b.address))
        return RoutingState(self._global, dict(self._rollouts), backends)

    async def get(self, model: str) -> Rollout | None:
        return self._rollouts.get(model)

    async def change(self, before: Rollout | None, after: Rollout, entry: AuditEntry) -> bool:
        current = self._rollouts.get(after.model)
        expected = before.revision if before is not None else -1
        if (current.revision if current is not None else -1) != expected:
            return False
        self._rollouts[after.model] = after.model_copy(update={"revision": max(expected, 0) + 1})
        self._record(entry)
        return True

    async def add_backend(self, backend: AddedBackend, entry: AuditEntry) -> bool:
        field = f"{backend.service} {backend.address}"
        if field in self._added:
            return False
        self._added[field] = backend
        self._record(entry)
        return True

    async def remove_backend(self, backend: AddedBackend, entry: AuditEntry) -> bool:
        field = f"{backend.service} {backend.address}"
        if field not in self._added:
            return False
        del self._added[field]
        self._record(entry)
        return True

    def _record(self, entry: AuditEntry) -> None:
        self._global += 1
        self._entries.insert(0, entry)
        del self._entries[AUDIT_KEPT:]

    async def audit(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        entries = [e for e in self._entries if subject is None or e.subject == subject]
        return entries[:limit]


class MemoryLiveCounts:
    """The live counters of this process's flushed buckets (a ``LiveCountStorage``)."""

    def __init__(self) -> None:
        self._buckets: dict[Bucket, defaultdict[str, int]] = {}

    async def add(self, batch: Mapping[Bucket, Mapping[str, int]], oldest: int) -> None:
        for bucket, counts in batch.items():
            target = self._buckets.get(bucket)
            if target is None:
                target = self._buckets[bucket] = defaultdict(int)
            for field, count in counts.items():
                target[field] += count
        self._buckets = {b: c for b, c in self._buckets.items() if b[2] >= oldest}

    async def counts(
        self, model: str, versions: Sequence[str] | None, oldest: int, current: int
    ) -> dict[str, Iterable[tuple[str, int]]]:
        found: dict[str, list[tuple[str, int]]] = {}
        for (m, version, bucket), counts in self._buckets.items():
            in_window = m == model and oldest <= bucket <= current
            if in_window and (versions is None or version in versions):
                found.setdefault(version, []).extend(counts.items())
        return dict(found)
