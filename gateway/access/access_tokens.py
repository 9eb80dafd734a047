"""Short-lived access tokens the gateway signs for the caller of an API key
(``POST /v1/auth/token``), so that the key itself need not travel on every request.

A token is a JWT signed with HS256 and the ``token_signing_key`` setting: every replica
holds the same secret, so any replica accepts a token another one issued. Its header
names the ``kid`` ``GATEWAY_KID``, which is how the gateway tells its own tokens from an
identity provider's. It carries the key's caller as ``sub`` (``key:<id>``), the key's
owner, roles, tier and limits, so the token is limited exactly as the key is (and counted
with it), a fresh ``jti`` (what ``POST /v1/auth/revoke`` names), and ``exp``. Revoking the
key stops new exchanges; tokens already issued live until they expire or are revoked.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt
from pydantic import ValidationError

from gateway.access.jwt_auth import InvalidToken, JwtVerifier, TokenClaims
from gateway.limits.tiers import TierLimits

GATEWAY_KID = "switchyard-gateway"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    expires_in: int


@dataclass(frozen=True)
class GatewayClaims:
    """What a gateway token says of its caller, beyond the standard claims."""

    claims: TokenClaims
    owner: str
    limits: TierLimits


class AccessTokens:
    def __init__(
        self, secret: str, *, issuer: str, audience: str, ttl_s: int, leeway_s: float = 30.0
    ) -> None:
        # The verifier checks the secret's length (RFC 7518 §3.2) and every claim.
        self.verifier = JwtVerifier(
            issuer=issuer,
            audience=audience,
            hs256_secret=secret,
            leeway_s=leeway_s,
            max_lifetime_s=ttl_s,
            require_jti=True,
        )
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    @staticmethod
    def is_ours(token: str) -> bool:
        """Whether the token says it is the gateway's (its signature is not checked yet)."""
        try:
            return jwt.get_unverified_header(token).get("kid") == GATEWAY_KID
        except jwt.PyJWTError:
            return False

    def issue(
        self, caller_id: str, owner: str, roles: frozenset[str], tier: str, limits: TierLimits
    ) -> IssuedToken:
        now = int(time.time())
        token_id = secrets.token_urlsafe(18)
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": caller_id,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": token_id,
            "owner": owner,
            "roles": sorted(roles),
            "tier": tier,
            "limits": limits.model_dump(),
        }
        token = jwt.encode(payload, self._secret, algorithm="HS256", headers={"kid": GATEWAY_KID})
        return IssuedToken(token, token_id, self.ttl_s)

    def verify(self, token: str) -> GatewayClaims:
        claims = self.verifier.verify(token)
        owner = claims.payload.get("owner")
        if not isinstance(owner, str):
            raise InvalidToken("the token's 'owner' claim is not a string")
        try:
            limits = TierLimits.model_validate(claims.payload.get("limits"))
        except ValidationError:
            raise InvalidToken("the token's 'limits' claim is not valid") from None
        return GatewayClaims(claims, owner, limits)
