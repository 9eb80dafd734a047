"""The limits on generation a caller's tier sets: tokens per summary, generated tokens per
day, and summary streams open at once (each kept in Redis, shared by every replica)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as redis

from gateway.errors import ApiError
from gateway.pipeline import PlannedCall, limits_unreachable

T = TypeVar("T")


async def _shared(plan: PlannedCall, operation: Awaitable[T], what: str) -> T | None:
    """A Redis operation under the limits' failure mode (None when it fails open)."""
    try:
        return await operation
    except (redis.ConnectionError, redis.TimeoutError):
        limits_unreachable(plan.state, plan.caller, what)
        return None


def model_default_tokens(plan: PlannedCall) -> int | None:
    for info in plan.state.backends.models("summarizer"):
        if info.name != plan.target.model:
            continue
        for version in info.versions:
            if version.version == plan.target.version:
                value = version.annotations.get("default_max_new_tokens")
                return int(value) if value else None
    return None


async def tokens_for(plan: PlannedCall, requested: int) -> int:
    """The max_new_tokens to send: the caller's, or the model's default, within the
    tier's cap; 400 past the cap, 429 when the day's token budget is spent."""
    cap = plan.caller.limits.max_new_tokens
    if requested > cap:
        raise ApiError(
            400,
            "invalid_argument",
            f"max_new_tokens is {requested}; the {plan.caller.tier} tier allows at most {cap}",
        )
    per_day = plan.caller.limits.tokens_per_day
    if per_day is not None:
        left = await _shared(
            plan, plan.state.limiter.tokens_left(plan.caller.id, per_day), "token budget"
        )
        if left is not None and left <= 0:
            raise ApiError(
                429,
                "rate_limited",
                f"the daily budget of {per_day} generated tokens is spent",
                {"Retry-After": "3600"},
            )
    return requested or min(model_default_tokens(plan) or cap, cap)


async def spend(plan: PlannedCall, generated_tokens: int) -> None:
    if plan.caller.limits.tokens_per_day is not None and generated_tokens:
        await _shared(
            plan, plan.state.limiter.spend_tokens(plan.caller.id, generated_tokens), "budget"
        )


async def open_stream_slot(plan: PlannedCall) -> str | None:
    """A lease on one of the caller's stream slots (None if limits fail open); 429 when
    all are taken."""
    most = plan.caller.limits.max_streams
    try:
        lease = await plan.state.limiter.open_stream(plan.caller.id, most)
    except (redis.ConnectionError, redis.TimeoutError):
        limits_unreachable(plan.state, plan.caller, "stream limit")
        return None
    if lease is None:
        raise ApiError(
            429,
            "rate_limited",
            f"the {plan.caller.tier} tier may have {most} summary stream(s) open at once",
            {"Retry-After": "1"},
        )
    return lease


async def close_stream_slot(plan: PlannedCall, lease: str | None) -> None:
    if lease is not None:
        await _shared(plan, plan.state.limiter.close_stream(plan.caller.id, lease), "stream limit")
