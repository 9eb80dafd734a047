"""Bearer tokens as callers: an identity provider's (``JwtVerifier``, its keys from a
secret, a JWKS file or a JWKS URL) or the gateway's own (``AccessTokens``), each checked
against the denylist of revoked ``jti``s shared by every replica.

A token is told to be the gateway's by its header's ``kid``; the header only chooses the
verifier, whose algorithm and key stay pinned by configuration, so a forged header gains
nothing. The denylist costs one EXISTS per request that carries a token with a ``jti``.
"""

from __future__ import annotations

import logging

import jwt
import redis.asyncio as redis

from gateway.access.access_tokens import AccessTokens
from gateway.access.auth import GRANTS, Caller
from gateway.access.interfaces import RevokedTokenStorage
from gateway.access.jwks import JwksFetcher
from gateway.access.jwt_auth import InvalidToken, JwtVerifier, UnknownKey
from gateway.access.revoked import revocation_ttl_s
from gateway.errors.refusals import Unauthenticated, Unavailable
from gateway.limits.tiers import TierLimits

log = logging.getLogger(__name__)


class BearerTokens:
    def __init__(
        self,
        tiers: dict[str, TierLimits],
        revoked: RevokedTokenStorage,
        *,
        external: JwtVerifier | None = None,
        fetcher: JwksFetcher | None = None,
        issued: AccessTokens | None = None,
        max_lifetime_s: float = 86_400.0,
        leeway_s: float = 30.0,
        fail_open: bool = True,
    ) -> None:
        self.tiers = tiers
        self.revoked = revoked
        self.external = external
        self.fetcher = fetcher
        """Keeps ``external``'s keys fresh when they come from a JWKS URL."""
        self.issued = issued
        """The gateway's own tokens, when a signing key is configured."""
        self.max_lifetime_s = max_lifetime_s
        self.leeway_s = leeway_s
        self.fail_open = fail_open

    def looks_like_token(self, credential: str) -> bool:
        configured = self.external is not None or self.issued is not None
        return configured and JwtVerifier.looks_like_jwt(credential)

    async def caller_of(self, token: str) -> Caller:
        """The token's caller (with every role it grants); 401 if the token is not valid,
        or was revoked."""
        try:
            caller = await self._verified(token)
        except InvalidToken as error:
            raise Unauthenticated(error.reason) from None
        if caller.token_id is not None and await self.is_revoked(caller.token_id):
            raise Unauthenticated("the token was revoked")
        return caller

    async def is_revoked(self, token_id: str) -> bool:
        """Whether the ``jti`` was revoked; while Redis is unreachable, False if limits
        fail open (a revocation holds once it answers again), else 503."""
        try:
            return await self.revoked.is_revoked(token_id)
        except (redis.ConnectionError, redis.TimeoutError):
            if not self.fail_open:
                refusal = Unavailable("revocations cannot be checked now", retry_after_s=1)
                raise refusal from None
            log.warning("revoked tokens unreachable: serving a token unchecked")
            return False

    async def revoke(self, token_id: str, expires_at: float | None, reason: str = "") -> int:
        """Refuse tokens with this ``jti`` until they expire; the seconds that holds."""
        ttl_s = revocation_ttl_s(expires_at, self.max_lifetime_s, self.leeway_s)
        await self.revoked.revoke(token_id, ttl_s, reason)
        return ttl_s

    @staticmethod
    def expiry_of(token: str) -> float | None:
        """The ``exp`` of a token ``caller_of`` has verified (read again, not checked)."""
        try:
            expires_at = jwt.decode(token, options={"verify_signature": False}).get("exp")
        except jwt.PyJWTError:
            return None
        return float(expires_at) if isinstance(expires_at, int | float) else None

    async def _verified(self, token: str) -> Caller:
        if self.issued is not None and AccessTokens.is_ours(token):
            ours = self.issued.verify(token)
            claims = ours.claims
            roles = _granted(claims.roles)
            tier = claims.tier or "free"
            # The key's caller, counted with the key: the subject is its ``key:<id>``.
            return Caller(claims.subject, ours.owner, roles, tier, ours.limits, claims.token_id)
        if self.external is None:
            raise InvalidToken("the token was signed by an unknown key")
        try:
            claims = self.external.verify(token)
        except UnknownKey:
            # The issuer may have rotated its key: fetch its set again (rate-limited).
            if self.fetcher is None or not await self.fetcher.refresh_for_unknown_kid():
                raise
            claims = self.external.verify(token)
        tier = claims.tier or "free"
        if tier not in self.tiers:
            raise InvalidToken(f"the token's tier {tier!r} is not known")
        return Caller(
            f"jwt:{claims.subject}",
            claims.subject,
            _granted(claims.roles),
            tier,
            self.tiers[tier],
            claims.token_id,
        )


def _granted(roles: frozenset[str]) -> frozenset[str]:
    return frozenset(g for role in roles for g in GRANTS.get(role, ()))
