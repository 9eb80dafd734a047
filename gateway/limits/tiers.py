"""What each tier of caller may use: requests per minute and per day, open streams, and
generated tokens per request and per day. A key may override any of them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MB = 1024 * 1024

LARGEST_LIMIT = 2**53 - 1
"""Limits are counted by Lua scripts in Redis, whose numbers are doubles: integers are
exact up to here."""


class TierLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_minute: int = Field(
        ge=1, le=LARGEST_LIMIT, description="Requests per minute (a burst of this many)."
    )
    per_day: int | None = Field(
        None, ge=1, le=LARGEST_LIMIT, description="Requests per UTC day; none: no cap."
    )
    max_streams: int = Field(ge=1, le=LARGEST_LIMIT, description="Summary streams open at once.")
    max_new_tokens: int = Field(
        ge=1, le=LARGEST_LIMIT, description="Most tokens one summary may generate."
    )
    tokens_per_day: int | None = Field(
        None, ge=1, le=LARGEST_LIMIT, description="Generated tokens per UTC day; none: no cap."
    )
    max_upload_bytes: int = Field(
        200 * MB, ge=1, le=LARGEST_LIMIT, description="Largest file one upload may hold."
    )
    max_open_batches: int | None = Field(
        None, ge=1, le=LARGEST_LIMIT, description="Batch jobs not yet ended; none: no cap."
    )


DEFAULT_TIERS: dict[str, TierLimits] = {
    "free": TierLimits(
        per_minute=10,
        per_day=100,
        max_streams=1,
        max_new_tokens=128,
        tokens_per_day=5_000,
        max_upload_bytes=10 * MB,
        max_open_batches=1,
    ),
    "pro": TierLimits(
        per_minute=100,
        per_day=10_000,
        max_streams=4,
        max_new_tokens=512,
        tokens_per_day=500_000,
        max_upload_bytes=200 * MB,
        max_open_batches=10,
    ),
    "enterprise": TierLimits(
        per_minute=1_000,
        per_day=None,
        max_streams=16,
        max_new_tokens=1_024,
        tokens_per_day=None,
        max_upload_bytes=1024 * MB,
        max_open_batches=100,
    ),
}


def limits_for(
    tiers: dict[str, TierLimits], tier: str, overrides: dict[str, Any] | None = None
) -> TierLimits:
    """The tier's limits with a key's overrides applied; an unknown tier is an error."""
    base = tiers.get(tier)
    if base is None:
        raise KeyError(tier)
    return base.model_copy(update=overrides) if overrides else base
