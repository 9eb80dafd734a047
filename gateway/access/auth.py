"""Who is calling: an API key (``Authorization: Bearer sy_...`` or ``X-API-Key``) or a JWT
bearer token, and the roles that gives them.

Roles nest: an ``operator`` may also infer, an ``admin`` may do everything. A missing or
unknown credential is 401 with ``WWW-Authenticate``; a known caller without the role a
route needs is 403. An address that keeps presenting invalid credentials is 429 for the
rest of its minute (``gateway.access.throttle``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as redis
from starlette.requests import Request

from gateway.access.interfaces import KeyStorage
from gateway.access.keys import ApiKey, UnknownTier, key_hash, key_id_of
from gateway.access.throttle import AuthThrottle
from gateway.edge import request_context
from gateway.errors.refusals import PermissionDenied, Unauthenticated, Unavailable
from gateway.limits.interfaces import LimitStorage
from gateway.limits.ratelimit import Decision
from gateway.limits.tiers import TierLimits, limits_for

if TYPE_CHECKING:
    # bearer.py makes callers of tokens: it imports this module.
    from gateway.access.bearer import BearerTokens

log = logging.getLogger(__name__)

INTERNAL_CALLER_HEADER = "x-switchyard-internal-caller"
"""Carries the token of a caller known to this process only (``gateway.access.internal``)."""

GRANTS = {
    "client": frozenset({"client"}),
    "operator": frozenset({"client", "operator"}),
    "admin": frozenset({"client", "operator", "admin"}),
}
LAST_KNOWN_GOOD_S = 600.0
"""While Redis is unreachable (and limits fail open), a key verified this recently is
still served; a revocation made meanwhile holds once Redis answers again."""


@dataclass(frozen=True)
class Caller:
    id: str
    """``key:<id>``, ``jwt:<subject>`` or ``admin:bootstrap``: what logs and limits name."""
    owner: str
    roles: frozenset[str]
    tier: str
    limits: TierLimits
    token_id: str | None = None
    """The ``jti`` of the bearer token the caller came with, if any (what revokes it)."""


@dataclass(frozen=True)
class Claim:
    """Who a model request says it is, known before any store is read: what routing goes
    by, and what is left to check (``Authenticator.check_and_count``)."""

    identity: str
    """The caller id: the one an API key claims (``key:<id>``, checked with the key), or
    the id of the caller known already."""
    credential: str | None = field(default=None, repr=False)
    """The API key to check; None when the caller is known already."""
    caller: Caller | None = None
    """The caller when known already: a verified token, the bootstrap admin key, the
    caller a stream token was issued to."""
    prepaid: bool = False
    """A batch job's line, sent in process as the job's caller: not counted against the
    per-minute limit (the job paces itself) nor, here, the daily quota (the job reserves
    it for its lines)."""

    @classmethod
    def known(cls, caller: Caller) -> Claim:
        return cls(caller.id, caller=caller)


def credential_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # present but not a bearer credential
    return request.headers.get("x-api-key")


class Authenticator:
    def __init__(
        self,
        keys: KeyStorage,
        tiers: dict[str, TierLimits],
        tokens: BearerTokens | None = None,
        admin_key_sha256: str | None = None,
        fail_open: bool = True,
        internal: Mapping[str, Caller] | None = None,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.keys = keys
        self.internal = internal if internal is not None else {}
        """Callers known to this process by a token (``gateway.access.internal``)."""
        self.tiers = tiers
        self.tokens = tokens
        self.throttle = throttle
        self.admin_key_sha256 = admin_key_sha256
        self.fail_open = fail_open
        self._last_known_good: dict[str, tuple[ApiKey, float]] = {}

    async def authenticate(self, request: Request, role: str = "client") -> Caller:
        async with self._throttled():
            credential = self._credential(request)
            if self.tokens is not None and self.tokens.looks_like_token(credential):
                caller = await self.tokens.caller_of(credential)
            else:
                caller = await self._from_key(credential)
        return _with_role(caller, role)

    def is_batch_line(self, request: Request) -> bool:
        """Whether the request is a batch job's line, sent in process (and answered whole)."""
        return request.headers.get(INTERNAL_CALLER_HEADER, "") in self.internal

    async def identify(self, request: Request) -> Claim:
        """Who the model request says it is, from what it carries: a bearer token verified
        here (locally, and against the revoked ``jti``s) or the bootstrap admin key gives
        the caller; a well-formed API key gives only the id it claims, which
        ``check_and_count`` checks. A missing or malformed credential is 401 here, an
        address over its invalid credentials 429. A batch job's line names its caller by
        this process's token for the job."""
        internal = self.internal.get(request.headers.get(INTERNAL_CALLER_HEADER, ""))
        if internal is not None:
            return Claim(internal.id, caller=internal, prepaid=True)
        async with self._throttled():
            credential = self._credential(request)
            if self.tokens is not None and self.tokens.looks_like_token(credential):
                caller = await self.tokens.caller_of(credential)
                return Claim.known(_with_role(caller, "client"))
            if self._is_bootstrap_admin(key_hash(credential)):
                return Claim.known(self._bootstrap_admin())
            key_id = key_id_of(credential)
            if key_id is None:
                raise Unauthenticated("the API key is not valid")
            return Claim(f"key:{key_id}", credential)

    async def check_and_count(
        self, claim: Claim, limiter: LimitStorage, also_get: Sequence[str] = ()
    ) -> tuple[Caller, Decision | None, list[bytes | None] | None]:
        """The claim's caller (client role) and the request counted against their limits;
        for an API key, the key is checked, counted and the values of ``also_get`` (cache
        entries) read in one Redis round trip. The decision is None when Redis could not
        be reached (the limits are then unchecked); the values are None when they were not
        read (a caller known already is counted on its own: there is no key to check)."""
        if claim.caller is not None:
            caller = claim.caller
            try:
                limits = caller.limits
                decision = await limiter.hit(caller.id, limits.per_minute, limits.per_day)
            except (redis.ConnectionError, redis.TimeoutError):
                return caller, None, None
            return caller, decision, None
        assert claim.credential is not None  # a claim without a caller carries its key
        credential = claim.credential
        digest = key_hash(credential)
        try:
            checked, found = await self.keys.verify_count_and_get(
                credential, self.tiers, limiter, claim.identity, also_get
            )
        except UnknownTier as error:
            raise self._unknown_tier(error.record) from None
        except (redis.ConnectionError, redis.TimeoutError):
            remembered = self._remembered(digest)
            return _with_role(self._caller_of(remembered), "client"), None, None
        if checked is None:
            self._last_known_good.pop(digest, None)
            async with self._throttled():
                raise Unauthenticated("the API key is not valid or was revoked")
        record, limits, decision = checked
        self._last_known_good[digest] = (record, time.monotonic())
        caller = Caller(
            claim.identity, record.owner, GRANTS.get(record.role, frozenset()), record.tier, limits
        )
        return _with_role(caller, "client"), decision, found

    async def still_valid(self, caller: Caller) -> bool:
        """Whether a caller checked earlier (the one a stream token was issued to) may
        still call: False once their API key (or the token they came with) has been
        revoked, on every replica at once."""
        token_id, tokens = caller.token_id, self.tokens
        if token_id is not None and tokens is not None and await tokens.is_revoked(token_id):
            return False
        if not caller.id.startswith("key:"):
            return True
        record = await self.keys.get(caller.id.removeprefix("key:"))
        return record is not None and not record.revoked

    def _credential(self, request: Request) -> str:
        credential = credential_of(request)
        if credential is None:
            raise Unauthenticated(
                "send an API key (Authorization: Bearer sy_...) or a token", invalid=False
            )
        return credential

    @asynccontextmanager
    async def _throttled(self) -> AsyncIterator[None]:
        """Refuse an address over its invalid credentials (429, before any check), and
        count the invalid credential this block refuses (not a missing one)."""
        address = request_context.current().client
        if self.throttle is not None:
            self.throttle.check(address)
        try:
            yield
        except Unauthenticated as refusal:
            if self.throttle is not None and refusal.invalid:
                await self.throttle.failed(address)
            raise

    def _is_bootstrap_admin(self, digest: str) -> bool:
        return bool(self.admin_key_sha256) and hmac.compare_digest(
            digest, self.admin_key_sha256 or ""
        )

    async def _from_key(self, key: str) -> Caller:
        digest = key_hash(key)
        if self._is_bootstrap_admin(digest):
            return self._bootstrap_admin()
        if key_id_of(key) is None:
            raise Unauthenticated("the API key is not valid")
        try:
            record = await self.keys.verify(key)
        except (redis.ConnectionError, redis.TimeoutError):
            record = self._remembered(digest)
        else:
            if record is not None:
                self._last_known_good[digest] = (record, time.monotonic())
            else:
                self._last_known_good.pop(digest, None)
        if record is None:
            raise Unauthenticated("the API key is not valid or was revoked")
        return self._caller_of(record)

    def _bootstrap_admin(self) -> Caller:
        limits = self.tiers.get("enterprise") or next(iter(self.tiers.values()))
        return Caller("admin:bootstrap", "admin", GRANTS["admin"], "enterprise", limits)

    def _caller_of(self, record: ApiKey) -> Caller:
        try:
            limits = limits_for(self.tiers, record.tier, record.limits)
        except KeyError:
            raise self._unknown_tier(record) from None
        return Caller(
            f"key:{record.id}",
            record.owner,
            GRANTS.get(record.role, frozenset()),
            record.tier,
            limits,
        )

    def _unknown_tier(self, record: ApiKey) -> PermissionDenied:
        log.error("key %s names an unknown tier %r", record.id, record.tier)
        return PermissionDenied("the key's tier is not configured")

    def _remembered(self, digest: str) -> ApiKey:
        """The key as last verified, while Redis is unreachable and limits fail open."""
        remembered = self._last_known_good.get(digest) if self.fail_open else None
        if remembered is None or time.monotonic() - remembered[1] > LAST_KNOWN_GOOD_S:
            raise Unavailable("the key store is unreachable; retry shortly", retry_after_s=1)
        log.warning("key store unreachable: serving key %s as last verified", remembered[0].id)
        return remembered[0]


def _with_role(caller: Caller, role: str) -> Caller:
    if role not in caller.roles:
        raise PermissionDenied(f"this needs the {role} role")
    return caller
