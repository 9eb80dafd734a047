"""The routing tables, the backends operators added at run time, and the audit trail of
both, kept in Redis so that every gateway replica follows one state.

Every change goes through one Lua script that checks the model's revision (a
compare-and-set: of two replicas acting on the same revision, one wins and the other
learns it lost), writes the new table, appends the audit entry and raises a global
revision. Replicas watch that global revision to know when to read the tables again.
All keys share the ``{routing}`` hash tag, so one script may touch them under Redis
Cluster. The scripts are the ``.lua`` files beside this module.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from gateway.routing.table import Rollout

AUDIT_KEPT = 10_000
"""Audit entries kept (the oldest are dropped first)."""

_HERE = Path(__file__).parent
CHANGE_ROLLOUT_LUA = (_HERE / "change_rollout.lua").read_text(encoding="utf-8")
"""A table written with a compare-and-set on its revision, audited, the revision raised."""
CHANGE_BACKEND_LUA = (_HERE / "change_backend.lua").read_text(encoding="utf-8")
"""An added backend written or removed, audited, the revision raised."""


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    subject: str
    """The model, or ``backend <service> <address>``."""
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AddedBackend:
    service: str
    address: str
    added_by: str
    added_at: float


@dataclass(frozen=True)
class RoutingState:
    revision: int
    rollouts: dict[str, Rollout]
    backends: list[AddedBackend]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def audit_entry(
    actor: str, action: str, subject: str, reason: str, before: Any, after: Any
) -> AuditEntry:
    def dump(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if isinstance(value, Rollout):
            return value.model_dump(mode="json")
        return dict(value)

    return AuditEntry(time.time(), actor, action, subject, reason, dump(before), dump(after))


class RoutingStore:
    """The routing state in Redis (a ``RoutingStorage``)."""

    def __init__(self, client: redis.Redis, prefix: str = "sy:") -> None:
        self._client = client
        self._tables = f"{prefix}{{routing}}:tables"
        self._revision = f"{prefix}{{routing}}:revision"
        self._audit = f"{prefix}{{routing}}:audit"
        self._backends = f"{prefix}{{routing}}:backends"
        self._change_rollout = client.register_script(CHANGE_ROLLOUT_LUA)
        self._change_backend = client.register_script(CHANGE_BACKEND_LUA)

    async def revision(self) -> int:
        """The global revision: it rises with every change of any table or backend."""
        return int(await self._client.get(self._revision) or 0)

    async def load(self) -> RoutingState:
        """Every table and added backend, read together (one transaction)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(self._revision)
        pipe.hgetall(self._tables)
        pipe.hgetall(self._backends)
        revision, tables, backends = await pipe.execute()
        return RoutingState(
            int(revision or 0),
            {
                _text(model): Rollout.model_validate_json(_text(table))
                for model, table in tables.items()
            },
            sorted(
                (AddedBackend(**json.loads(_text(b))) for b in backends.values()),
                key=lambda b: (b.service, b.address),
            ),
        )

    async def get(self, model: str) -> Rollout | None:
        table = await self._client.hget(self._tables, model)
        return Rollout.model_validate_json(_text(table)) if table else None

    async def change(self, before: Rollout | None, after: Rollout, entry: AuditEntry) -> bool:
        """Write ``after`` if the stored table is still ``before`` (by revision); False
        when another change came first, and then nothing is written."""
        expected = before.revision if before is not None else -1
        written, _ = await self._change_rollout(
            keys=[self._tables, self._revision, self._audit],
            args=[
                after.model,
                expected,
                after.model_copy(update={"revision": max(expected, 0) + 1}).model_dump_json(),
                json.dumps(entry.public()),
                AUDIT_KEPT,
            ],
        )
        return bool(written)

    async def add_backend(self, backend: AddedBackend, entry: AuditEntry) -> bool:
        return await self._change_backend_field(backend, json.dumps(asdict(backend)), entry)

    async def remove_backend(self, backend: AddedBackend, entry: AuditEntry) -> bool:
        return await self._change_backend_field(backend, "", entry)

    async def _change_backend_field(
        self, backend: AddedBackend, value: str, entry: AuditEntry
    ) -> bool:
        changed = await self._change_backend(
            keys=[self._backends, self._revision, self._audit],
            args=[
                f"{backend.service} {backend.address}",
                value,
                json.dumps(entry.public()),
                AUDIT_KEPT,
            ],
        )
        return bool(changed)

    async def audit(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first, of one subject or of all."""
        # Of all subjects, the newest ``limit`` are the list's head: read only those.
        last = AUDIT_KEPT if subject is not None else max(1, min(limit, AUDIT_KEPT))
        raw = await self._client.lrange(self._audit, 0, last - 1)
        entries = [AuditEntry(**json.loads(_text(r))) for r in raw]
        if subject is not None:
            entries = [e for e in entries if e.subject == subject]
        return entries[:limit]
