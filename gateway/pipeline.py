"""The steps of every model request (classify, NER, summarize, the summary stream), in the
order they are taken:

1. request id and trace context (``RequestContextMiddleware``, for every request);
2. admission: a request that arrived after draining began is refused (``admit``);
3. who the caller says they are, from the request alone (``Authenticator.identify``):
   the id an API key claims, a bearer token's caller (verified here, locally, and its
   ``jti`` looked up among the revoked: one EXISTS), or the caller a stream token was
   issued to; no credential, or a malformed one, is 401 here; an address that presented
   too many invalid credentials this minute is 429 here;
4. the model version, chosen once, for that identity (``Router.choose``: pin, allowlist,
   sticky weight, stable); a refusal of the routing's (a retired version) is held;
5. the cache keys of the request's texts for that version (classifier and NER);
6. authentication and counting (``Authenticator.check_and_count``): for an API key, one
   Redis round trip checks the key, counts both rate limits and reads those cache
   entries; then 429 if a limit is spent, and only then the held routing refusal, so a
   caller who is not let in learns nothing of the models (401 and 429 come first);
7. a backend that hosts the version (``Backends.pick``), and the time left to call it;

``plan_call`` takes steps 2 to 7; the route then takes the last ones:

8. the cached answers, those read in step 6 or looked up now (``cached_results``);
9. the backend call for the rest, the time left its gRPC deadline (``call_backend``);
10. the answer as JSON (or events), or the error in its envelope (``gateway.errors``);
11. a copy of a request stable answered for the shadow version, if the table has one
    (``stable_call`` describes it, ``gateway.shadow.mirror`` decides and sends it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from grpc import aio

from gateway.access.auth import Caller, Claim
from gateway.backends.endpoints import Endpoint
from gateway.cache.interfaces import CacheStorage
from gateway.edge import request_context, request_span
from gateway.errors.grpc_status import from_grpc
from gateway.errors.refusals import ApiError, DeadlineExceeded, InvalidArgument, Unavailable
from gateway.routing.router import Target
from gateway.shadow.mirror import StableCall
from gateway.state import GatewayState
from switchyard import telemetry

T = TypeVar("T")

PRIORITY_METADATA = "x-switchyard-priority"
LOW_PRIORITY = "low"
"""gRPC metadata of a batch job's call: the service batches it only when no interactive
item waits."""

TIME_BUDGET_HEADER = "x-request-timeout"
"""Seconds the caller will wait; the gRPC deadline is what is left of it (capped)."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What a model route asks for: the parts of the steps that differ from route to route."""

    service: str
    model: str
    """The model the path or the body names; empty: the service's default."""
    pin: str | None
    """The version the path or ``X-Model-Version`` pins, if any."""
    texts: Sequence[str] | None = None
    """The texts whose answers are cached one by one (classifier, NER); None: not cached."""
    options: str = ""
    """The request's options that change an answer (part of each text's cache key)."""


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

    def call_metadata(self, rpc: str) -> tuple[tuple[str, str], ...]:
        """The metadata of the call of ``rpc`` (``package.Service/Method``) about to be
        made; while traces are on, it names the gateway's client span for the call."""
        return request_span.client_metadata(rpc, self.endpoint.address, self.metadata)


async def plan_call(
    request: Request, state: GatewayState, call: ModelCall, caller: Caller | None = None
) -> PlannedCall:
    """Steps 2 to 7 of one model request, in their order (see the module). ``caller``: the
    caller a stream token was issued to, known already (counted, not authenticated)."""
    admit()
    record = request_context.current()
    # Server-Timing: "auth" is the credential checked (with the count and cache read of the
    # same round trip), "limit" a caller known already, only counted.
    step = "auth" if caller is None else "limit"
    started = time.perf_counter()
    claim = await state.auth.identify(request) if caller is None else Claim.known(caller)
    identified_s = time.perf_counter() - started
    # Before the round trip, so that it can read the cache entries of the chosen version:
    # a valid key's caller is the id it claims, and a token's was verified just now.
    chosen = choose_version(state, call, claim.identity)
    keys = cache_keys(request, state.cache, call, chosen)
    started = time.perf_counter()
    if claim.prepaid and claim.caller is not None:
        # A batch job's line: its job counted it against the daily quota, and a job is
        # not held to the per-minute limit. It yields to interactive work in the batcher,
        # and is left out of what canary guardrails judge.
        caller, found = claim.caller, None
        record.judged = False
        priority: tuple[tuple[str, str], ...] = ((PRIORITY_METADATA, LOW_PRIORITY),)
    else:
        caller, decision, found = await state.auth.check_and_count(claim, state.limiter, keys or ())
        state.limits.enforce(caller, decision)
        priority = ()
    record.timings.append((step, identified_s + time.perf_counter() - started))
    record.caller = caller.id
    if caller.id != claim.identity:
        # The rare path, not expected to be taken: a checked key is the id it claimed.
        # Should they differ, the checked caller is the one routed (sticky weights and
        # allowlists go by it), and entries read for another version are not used.
        again = choose_version(state, call, caller.id)
        if again != chosen:
            chosen, keys, found = again, cache_keys(request, state.cache, call, again), None
    if isinstance(chosen, ApiError):
        raise chosen
    endpoint = choose_backend(state, call.service, chosen)
    settings = state.settings
    limit_s = (
        settings.stream_timeout_s if call.service == "summarizer" else settings.request_timeout_s
    )
    timeout_s = time_budget_s(request, limit_s)
    trace = record.trace
    return PlannedCall(
        state,
        caller,
        chosen,
        endpoint,
        timeout_s,
        trace.request_id,
        trace.grpc_metadata() + priority,
        keys,
        found if keys is not None else None,
    )


def choose_version(state: GatewayState, call: ModelCall, identity: str) -> Target | ApiError:
    """The version for a caller (``Router.choose``), or the routing's refusal, which the
    caller is told only once let in: 401 and 429 come before it."""
    try:
        return state.router.choose(call.service, call.model, identity, call.pin)
    except ApiError as refusal:
        return refusal


def cache_keys(
    request: Request, cache: CacheStorage, call: ModelCall, chosen: Target | ApiError
) -> list[str] | None:
    """One cache key per text for the chosen version, or None when this request is not
    cached: the route caches nothing, the cache is off, the caller asked to bypass it
    (``Cache-Control: no-cache``), the version is not known before the call, or the
    routing refused."""
    if call.texts is None or not cache.enabled or isinstance(chosen, ApiError):
        return None
    if not chosen.version or "no-cache" in request.headers.get("cache-control", ""):
        return None
    return [
        cache.key(call.service, chosen.model, chosen.version, call.options, text)
        for text in call.texts
    ]


def choose_backend(state: GatewayState, service: str, target: Target) -> Endpoint:
    """A backend for the version; the request's record names the route (for metrics,
    live figures and logs) and the answer gets the version's headers."""
    record = request_context.current()
    # Only versions a backend lists are named in metrics and live figures: a pin is the
    # caller's free text, and each new name would make new time series.
    known = state.backends.lists(service, target.model, target.version)
    record.route(target.model if known else "", target.version if known else "", target.reason)
    for header in target.headers:
        record.add_header(*header)
    return state.backends.pick(service, target.model, target.version)


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
    code = "UNKNOWN"
    try:
        answer = await call
        code = "OK"
        return answer
    except aio.AioRpcError as error:
        code = error.code().name
        raise from_grpc(error, service) from None
    except asyncio.CancelledError:
        code = "CANCELLED"  # the caller left, or its deadline passed
        raise
    finally:
        request_context.current().backend_s = time.perf_counter() - started
        if telemetry.ENABLED:
            request_span.end_clients(code)


def stable_call(plan: PlannedCall, service: str, answered: str) -> StableCall:
    """What a shadow mirror repeats of a backend call ``answered`` (a version) has just
    answered: its route, its trace, and the backend time ``call_backend`` noted."""
    trace = tuple(item for item in plan.metadata if item[0] != PRIORITY_METADATA)
    return StableCall(
        service,
        plan.target.model,
        answered,
        plan.target.reason,
        plan.request_id,
        trace,
        request_context.current().backend_s or 0.0,
    )
