"""The limits of one gateway applied to a request: a caller's request counted against
their burst and daily limits, the limit headers of the answer, 429 when a limit is spent,
and what happens when Redis, where the limits are counted, cannot be reached (fail open:
count, log and serve; fail closed: 503)."""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as redis

from gateway.edge import request_context
from gateway.edge.metrics import GatewayMetrics
from gateway.errors.refusals import RateLimited, Unavailable
from gateway.limits.interfaces import LimitStorage
from gateway.limits.ratelimit import Decision
from gateway.limits.tiers import TierLimits

log = logging.getLogger(__name__)


class Limited(Protocol):
    """A caller as the limits see them (``gateway.access.auth.Caller`` is one)."""

    @property
    def id(self) -> str:
        """``key:<id>``, ``jwt:<subject>``...: the subject the limits are counted for."""
        ...

    @property
    def tier(self) -> str: ...

    @property
    def limits(self) -> TierLimits: ...


class LimitPolicy:
    """Where the limits are counted (``limiter``) and what happens when that store cannot
    be reached (``fail_closed``)."""

    def __init__(self, limiter: LimitStorage, metrics: GatewayMetrics, fail_closed: bool) -> None:
        self.limiter = limiter
        self.metrics = metrics
        self.fail_closed = fail_closed

    async def count_request(self, caller: Limited) -> Decision | None:
        """Count the request against the caller's burst and daily limits (one atomic script
        in Redis, shared by every replica); None when Redis cannot be reached."""
        limits = caller.limits
        try:
            return await self.limiter.hit(caller.id, limits.per_minute, limits.per_day)
        except (redis.ConnectionError, redis.TimeoutError):
            return None

    def enforce(self, caller: Limited, decision: Decision | None) -> None:
        """The limit headers, and 429 naming the limit when either is spent (a decision of
        None: Redis was unreachable, handled as the failure setting says)."""
        if decision is None:
            self.unreachable(caller, "rate limits")
            return
        record = request_context.current()
        for name, value in limit_headers(decision):
            record.add_header(name, value)
        if not decision.allowed:
            what = "requests per minute" if decision.limit == "minute" else "requests per day"
            limit = decision.per_minute if decision.limit == "minute" else decision.per_day
            raise RateLimited(
                f"the {decision.limit} limit of {limit} {what} is spent; retry in"
                f" {decision.retry_after_s} s",
                retry_after_s=decision.retry_after_s,
                # Worth waiting for a minute's burst; not for a day's quota.
                retry=decision.limit == "minute",
            )

    def unreachable(self, caller: Limited, what: str) -> None:
        """Redis cannot be reached: 503 when limits fail closed, else count, log and go on."""
        self.metrics.limiter_unavailable.inc()
        if self.fail_closed:
            raise Unavailable(f"the {what} cannot be checked now; retry shortly", retry_after_s=1)
        log.warning("%s unavailable: serving %s without them", what, caller.id)


def limit_headers(decision: Decision) -> list[tuple[str, str]]:
    """IETF RateLimit / RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers) for the
    burst limit, and the X-RateLimit-* trio that existing clients read."""
    headers = [
        ("RateLimit-Policy", f'"burst";q={decision.per_minute};w=60'),
        ("RateLimit", f'"burst";r={decision.remaining_minute};t={decision.reset_s}'),
        ("X-RateLimit-Limit", str(decision.per_minute)),
        ("X-RateLimit-Remaining", str(decision.remaining_minute)),
        ("X-RateLimit-Reset", str(decision.reset_s)),
    ]
    if decision.per_day is not None:
        headers[0] = ("RateLimit-Policy", headers[0][1] + f', "daily";q={decision.per_day};w=86400')
        headers[1] = (
            "RateLimit",
            headers[1][1] + f', "daily";r={decision.remaining_day};t={decision.day_reset_s}',
        )
    return headers
