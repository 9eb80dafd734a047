"""The steps every model request goes through, in this order:

1. request id and trace context (``RequestContextMiddleware``, for every request);
2. authentication of the caller;
3. rate limit of the caller (for an API key, in the same Redis call as step 2);
4. choice of the model version (``Router.choose``: pin, allowlist, sticky weight, stable)
   and of a backend that hosts it;
5. cached answer, for deterministic models;
6. the backend call, with the request's time budget as its gRPC deadline (``call_backend``);
7. the answer mapped to JSON, or the error to its envelope (``gateway.errors``).

Steps 2, 3 and 5 join between the others without reordering them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from grpc import aio

from gateway.access.auth import Caller
from gateway.backends.endpoints import Endpoint
from gateway.edge import request_context
from gateway.errors.grpc_status import from_grpc
from gateway.errors.refusals import ApiError, DeadlineExceeded, InvalidArgument, Unavailable
from gateway.routing.router import Target
from gateway.state import GatewayState

T = TypeVar("T")

TIME_BUDGET_HEADER = "x-request-timeout"
"""Seconds the caller will wait; the gRPC deadline is what is left of it (capped)."""


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """What a route needs to call its backend: the version, the deadline, the trace."""

    state: GatewayState
    caller: Caller
    target: Target
    endpoint: Endpoint
    """The backend address this call goes to."""
    timeout_s: float
    request_id: str
    metadata: tuple[tuple[str, str], ...]
    cache_keys: list[str] | None = None
    """One cache key per text for the chosen version; None when the answer is not cached."""
    cached: list[bytes | None] | None = None
    """The cache's values for ``cache_keys``, when they were read with the key check."""


CacheKeys = Callable[[Target], list[str] | None]
"""The cache keys of a request's texts for a version (None: not cached)."""


async def plan_call(
    request: Request,
    state: GatewayState,
    service: str,
    model: str,
    pin: str | None,
    caller: Caller | None = None,
    cache_keys_for: CacheKeys | None = None,
) -> PlannedCall:
    """Steps 2 to 4 for one model request, in their order (step 5 follows in the routes
    of deterministic models, which give ``cache_keys_for``). (A caller already known, from
    a stream token, skips authentication.)"""
    admit()
    record = request_context.current()
    started = time.perf_counter()
    prefetched_keys: list[str] | None = None
    found: list[bytes | None] | None = None
    if caller is None:
        # An API key is checked and counted in one Redis round trip, so "auth" includes
        # the rate limit then; a token is checked here and counted in a second step. The
        # same round trip reads the cache entries of the version the key's id would be
        # routed to; they are used only if the checked caller is routed there too.
        prefetched_keys = _early_cache_keys(request, state, service, model, pin, cache_keys_for)
        caller, decision, found = await state.auth.admit(
            request, state.limiter, prefetched_keys or ()
        )
        record.timings.append(("auth", time.perf_counter() - started))
    else:
        decision = await state.limits.count_request(caller)
        record.timings.append(("limit", time.perf_counter() - started))
    record.caller = caller.id
    state.limits.enforce(caller, decision)
    target = state.router.choose(service, model, caller.id, pin)
    # Only versions a backend lists are named in metrics and live figures: a pin is the
    # caller's free text, and each new name would make new time series.
    known = state.backends.lists(service, target.model, target.version)
    record.route(target.model if known else "", target.version if known else "", target.reason)
    for header in target.headers:
        record.add_header(*header)
    endpoint = state.backends.pick(service, target.model, target.version)
    # Step 5, a cached answer, comes in the routes of deterministic models (classify, NER).
    keys = cache_keys_for(target) if cache_keys_for is not None else None
    cached = found if keys is not None and keys == prefetched_keys else None
    settings = state.settings
    limit_s = settings.stream_timeout_s if service == "summarizer" else settings.request_timeout_s
    timeout_s = time_budget_s(request, limit_s)
    trace = request_context.current().trace
    return PlannedCall(
        state,
        caller,
        target,
        endpoint,
        timeout_s,
        trace.request_id,
        trace.grpc_metadata(),
        keys,
        cached,
    )


def _early_cache_keys(
    request: Request,
    state: GatewayState,
    service: str,
    model: str,
    pin: str | None,
    cache_keys_for: CacheKeys | None,
) -> list[str] | None:
    """The cache keys to read with the key check: those of the version the API key's id
    would be routed to (None for a token, or when the routing itself refuses: that error
    comes after authentication, in its place)."""
    if cache_keys_for is None:
        return None
    identity = state.auth.claimed_identity(request)
    if identity is None:
        return None
    try:
        return cache_keys_for(state.router.choose(service, model, identity, pin))
    except ApiError:
        return None


def admit() -> None:
    """Refuse a model call that arrived after draining began; one that arrived before
    (its body perhaps still uploading then) is served."""
    if request_context.current().arrived_draining:
        raise Unavailable(
            "the gateway is shutting down; send the request again",
            {"Connection": "close"},
            retry_after_s=1,
        )


def time_budget_s(request: Request, limit_s: float) -> float:
    """What is left of the request's time budget: the caller's, capped by ``limit_s``."""
    budget = limit_s
    header = request.headers.get(TIME_BUDGET_HEADER)
    if header is not None:
        try:
            asked = float(header)
        except ValueError:
            asked = -1.0
        if not 0 < asked < float("inf"):
            raise InvalidArgument(f"{TIME_BUDGET_HEADER}: give seconds > 0")
        request_context.current().caller_budget_s = asked
        budget = min(budget, asked)
    left = budget - (time.perf_counter() - request_context.current().started)
    if left <= 0:
        raise DeadlineExceeded("the request's time budget ran out")
    return left


async def call_backend(service: str, call: Awaitable[T]) -> T:
    """Await a unary backend call, timing it for ``Server-Timing``; a failure becomes
    the HTTP error its gRPC status maps to."""
    started = time.perf_counter()
    try:
        return await call
    except aio.AioRpcError as error:
        raise from_grpc(error, service) from None
    finally:
        request_context.current().backend_s = time.perf_counter() - started
