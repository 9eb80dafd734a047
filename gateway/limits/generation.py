"""The limits on generation a caller's tier sets: tokens per summary, generated tokens per
day, and summary streams open at once (each kept in Redis, shared by every replica)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis

from gateway.errors.refusals import InvalidArgument, RateLimited
from gateway.limits.policy import Limited, LimitPolicy

T = TypeVar("T")


async def _shared(
    policy: LimitPolicy, caller: Limited, operation: Awaitable[T], what: str
) -> T | None:
    """A Redis operation under the limits' failure mode (None when it fails open)."""
    try:
        return await operation
    except (redis.ConnectionError, redis.TimeoutError):
        policy.unreachable(caller, what)
        return None


async def tokens_for(
    policy: LimitPolicy,
    caller: Limited,
    requested: int,
    model_default: Callable[[], int | None],
) -> int:
    """The max_new_tokens to send: the caller's, or the model's default (asked only when
    the caller gave none), within the tier's cap; 400 past the cap, 429 when the day's
    token budget is spent."""
    cap = caller.limits.max_new_tokens
    if requested > cap:
        raise InvalidArgument(
            f"max_new_tokens is {requested}; the {caller.tier} tier allows at most {cap}",
            param="max_new_tokens",
        )
    per_day = caller.limits.tokens_per_day
    if per_day is not None:
        left = await _shared(
            policy, caller, policy.limiter.tokens_left(caller.id, per_day), "token budget"
        )
        if left is not None and left <= 0:
            raise RateLimited(
                f"the daily budget of {per_day} generated tokens is spent",
                retry_after_s=3600,
                retry=False,
            )
    return requested or min(model_default() or cap, cap)


async def spend(policy: LimitPolicy, caller: Limited, generated_tokens: int) -> None:
    if caller.limits.tokens_per_day is not None and generated_tokens:
        await _shared(
            policy, caller, policy.limiter.spend_tokens(caller.id, generated_tokens), "budget"
        )


async def open_stream_slot(policy: LimitPolicy, caller: Limited) -> str | None:
    """A lease on one of the caller's stream slots (None if limits fail open); 429 when
    all are taken."""
    most = caller.limits.max_streams
    try:
        lease = await policy.limiter.open_stream(caller.id, most)
    except (redis.ConnectionError, redis.TimeoutError):
        policy.unreachable(caller, "stream limit")
        return None
    if lease is None:
        raise RateLimited(
            f"the {caller.tier} tier may have {most} summary stream(s) open at once",
            retry_after_s=1,
            retry=True,  # a slot frees when one of the caller's streams ends
        )
    return lease


async def close_stream_slot(policy: LimitPolicy, caller: Limited, lease: str | None) -> None:
    if lease is not None:
        await _shared(policy, caller, policy.limiter.close_stream(caller.id, lease), "stream limit")


_settling: set[asyncio.Task[None]] = set()


def settle_stream_later(
    policy: LimitPolicy, caller: Limited, lease: str | None, generated_tokens: int
) -> None:
    """Give a stream's slot back and count its tokens, in a task of its own: this runs
    when a stream ends, perhaps because its task is being cancelled."""

    async def settle() -> None:
        await close_stream_slot(policy, caller, lease)
        await spend(policy, caller, generated_tokens)

    task = asyncio.get_running_loop().create_task(settle())
    _settling.add(task)
    task.add_done_callback(_settling.discard)


class StreamSettlement:
    """A stream's slot and generated tokens, settled once: before its last event goes
    out when it ends (so the caller's next call already sees them), or in a task of its
    own when its generation is given up (cancelled, perhaps mid-await)."""

    def __init__(self, policy: LimitPolicy, caller: Limited, lease: str | None) -> None:
        self._policy = policy
        self._caller = caller
        self._lease = lease
        self._settled = False
        self.generated_tokens = 0
        """As the model service counts them, kept current by the stream."""

    async def now(self) -> None:
        if not self._settled:
            self._settled = True
            await close_stream_slot(self._policy, self._caller, self._lease)
            await spend(self._policy, self._caller, self.generated_tokens)

    def later(self) -> None:
        if not self._settled:
            self._settled = True
            settle_stream_later(self._policy, self._caller, self._lease, self.generated_tokens)
