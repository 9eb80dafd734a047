"""The interfaces of the access stores, each with a Redis implementation (shared by every
replica) and an in-process one (``gateway.access.memory``) that follows the same rules:

- ``KeyStorage``: API key records (``KeyStore`` in ``gateway.access.keys``);
- ``StreamTokenStorage``: single-use stream tokens (``StreamTokens`` in
  ``gateway.access.stream_tokens``);
- ``RevokedTokenStorage``: revoked bearer tokens by ``jti`` (``RevokedTokens`` in
  ``gateway.access.revoked``);
- ``FailureCounter``: invalid credentials per client address (``RedisFailureCounter`` in
  ``gateway.access.throttle``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from gateway.access.keys import ApiKey, Checked
from gateway.limits.interfaces import LimitStorage
from gateway.limits.tiers import TierLimits

if TYPE_CHECKING:
    # auth.py checks callers against a KeyStorage: it imports this module.
    from gateway.access.auth import Caller


class KeyStorage(Protocol):
    async def create(
        self, owner: str, role: str, tier: str, limits: dict[str, Any] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key's record and the key itself, which is shown once and never stored."""
        ...

    async def verify(self, key: str) -> ApiKey | None:
        """The key's record if ``key`` is a live key, else None."""
        ...

    async def verify_and_count(
        self,
        key: str,
        tiers: dict[str, TierLimits],
        limiter: LimitStorage,
        subject: str,
        *,
        now_ms: int | None = None,
    ) -> Checked | None:
        """``verify`` and, for a live key, ``limiter.hit`` on ``subject`` with its limits.
        None for a key that is not live; ``UnknownTier`` for a live key whose tier is not
        configured (nothing is counted then)."""
        ...

    async def verify_count_and_get(
        self,
        key: str,
        tiers: dict[str, TierLimits],
        limiter: LimitStorage,
        subject: str,
        also_get: Sequence[str],
        *,
        now_ms: int | None = None,
    ) -> tuple[Checked | None, list[bytes | None] | None]:
        """``verify_and_count``, and the stored values of ``also_get`` (cache entries)
        where the store can read them in the same round trip (else None)."""
        ...

    async def get(self, key_id: str) -> ApiKey | None:
        """The record of ``key_id``, revoked or not."""
        ...

    async def list(self) -> list[ApiKey]:
        """Every record, by id."""
        ...

    async def move_older_records(self) -> int:
        """Records kept under an older layout moved to the current one; how many."""
        ...

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key."""
        ...


class StreamTokenStorage(Protocol):
    @property
    def ttl_s(self) -> int:
        """Seconds a token stays valid."""
        ...

    async def issue(self, caller: Caller) -> str:
        """A new token that opens one stream as ``caller``."""
        ...

    async def redeem(self, token: str) -> Caller | None:
        """The caller the token was issued to, once; None if unknown, used or expired."""
        ...


class RevokedTokenStorage(Protocol):
    async def revoke(self, token_id: str, ttl_s: int, reason: str = "") -> None:
        """Refuse tokens with this ``jti`` for the next ``ttl_s`` seconds."""
        ...

    async def is_revoked(self, token_id: str) -> bool:
        """Whether tokens with this ``jti`` are refused."""
        ...

    async def ttl_s(self, token_id: str) -> int | None:
        """Seconds the revocation is still remembered; None if there is none."""
        ...


class FailureCounter(Protocol):
    async def count(self, address: str, window_s: int) -> tuple[int, int]:
        """Count one invalid credential from ``address``: the failures counted in the
        current window (which the first one opens) and the seconds left of it."""
        ...
