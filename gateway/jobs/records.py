"""Uploaded files and batch jobs as the gateway keeps them, and as OpenAI's Files and
Batches API shows them (``public``), so the ``openai`` SDK reads them unchanged.

A batch is kept as flat string fields (a Redis hash): the runner holding the lease writes
its progress fields, a cancel writes its own, and neither overwrites the other's.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

FINAL = frozenset({"completed", "failed", "cancelled", "expired"})
"""Statuses after which nothing runs and nothing changes."""
OPEN = frozenset({"validating", "in_progress", "finalizing", "cancelling"})

TIMESTAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


def now_s() -> int:
    return int(time.time())


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    """The caller id (``key:<id>``, ``jwt:<subject>``) who uploaded it, or made it (results)."""
    filename: str
    purpose: str
    size: int
    created_at: int
    expires_at: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: str | bytes) -> FileRecord:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class JobCaller:
    """Who a batch runs as, kept with it: any replica may resume it."""

    id: str
    owner: str
    tier: str
    roles: list[str]
    limits: dict[str, Any]


@dataclass
class BatchRecord:
    id: str
    owner: str
    endpoint: str
    input_file_id: str
    completion_window: str
    created_at: int
    expires_at: int
    caller: JobCaller
    metadata: dict[str, str] | None = None
    status: str = "validating"
    total: int = 0
    completed: int = 0
    failed: int = 0
    line: int = 0
    """Checkpoint: input lines (after validation, in file order) whose answers are kept."""
    parts: int = 0
    """Checkpoint: answer parts written (one per chunk of lines)."""
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    cancel: bool = False
    """A cancel was asked for; the runner stops at its next checkpoint."""
    times: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }
        for name in TIMESTAMPS:
            answer[name] = self.times.get(name)
        return answer

    def fields(self) -> dict[str, str]:
        """The record as the flat string fields of its Redis hash."""
        spec = {
            "id": self.id,
            "owner": self.owner,
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "caller": asdict(self.caller),
            "metadata": self.metadata,
        }
        return {
            "spec": json.dumps(spec),
            "status": self.status,
            "cancel": "1" if self.cancel else "0",
            **progress_fields(self),
        }

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> BatchRecord:
        spec = json.loads(raw["spec"])
        spec["caller"] = JobCaller(**spec["caller"])
        record = cls(**spec)
        record.status = raw.get("status", "validating")
        for name in ("total", "completed", "failed", "line", "parts"):
            setattr(record, name, int(raw.get(name, 0)))
        record.output_file_id = raw.get("output_file_id") or None
        record.error_file_id = raw.get("error_file_id") or None
        record.errors = json.loads(raw["errors"]) if raw.get("errors") else None
        record.cancel = raw.get("cancel") == "1"
        record.times = {name: int(raw[name]) for name in TIMESTAMPS if raw.get(name)}
        return record


def progress_fields(record: BatchRecord) -> dict[str, str]:
    """The fields the runner writes: counts, checkpoint, results and timestamps."""
    fields = {
        "total": str(record.total),
        "completed": str(record.completed),
        "failed": str(record.failed),
        "line": str(record.line),
        "parts": str(record.parts),
        "output_file_id": record.output_file_id or "",
        "error_file_id": record.error_file_id or "",
        "errors": json.dumps(record.errors) if record.errors else "",
    }
    fields.update({name: str(at) for name, at in record.times.items()})
    return fields


def text(value: object) -> str:
    """A Redis reply's string (replies come as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}
