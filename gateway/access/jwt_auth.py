"""Verify JWT bearer tokens (RFC 7519) with PyJWT, for callers that carry no API key.

Why each check exists:

- The algorithm is pinned by configuration (HS256 with a shared secret, RS256 with a JWKS
  file) and never read from the token, so an ``"alg": "none"`` token or an HS256 token
  "signed" with the RSA public key as its secret (algorithm confusion) cannot pass.
- The HS256 secret must be at least 32 bytes, because RFC 7518 §3.2 requires a key as long
  as the hash output; a shorter one can be brute-forced offline from any captured token.
- JWKS keys must be RSA public keys of at least 2048 bits meant for signatures: a private
  key in the set means it was published by mistake, and short keys are factorable
  (``gateway.access.jwks``, which also keeps a URL's set fresh).
- The key is chosen by the token's ``kid`` so issuers can rotate keys; an unknown ``kid``
  is refused rather than tried against every key.
- ``exp``, ``iss``, ``aud`` and ``sub`` are required: without ``exp`` a leaked token works
  forever, without ``iss``/``aud`` a token minted by another issuer or for another service
  would be accepted here, and without ``sub`` there is no one to attribute the call to.
- A token may not live longer than ``max_lifetime_s`` from now: a revoked ``jti`` is
  remembered only that long (``gateway.access.revoked``).
- ``nbf`` is checked when present so tokens issued for later cannot be used early, and a
  small leeway absorbs clock skew between the issuer and the gateway.
- Roles outside the gateway's own set are dropped, so a token from a shared issuer cannot
  grant a role the gateway never defined; a malformed roles or tier claim is refused rather
  than guessed at.
- Refusal reasons are fixed, short sentences, never PyJWT's text, so nothing from the token
  (or the library's internals) is echoed back to the caller.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidJTIError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidSubjectError,
    MissingRequiredClaimError,
    PyJWTError,
)
from jwt.types import Options

from gateway.access.jwks import Keys, load_jwks_file

KNOWN_ROLES = frozenset({"client", "operator", "admin"})
MIN_HS256_SECRET_BYTES = 32  # RFC 7518 §3.2: a key of the same size as the hash output
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
DEFAULT_LEEWAY_S = 30.0

# Compact JWS: header and payload are never empty; the signature is empty only for
# "alg": "none", which should still reach the verifier (and be refused there) rather
# than be mistaken for an API key.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    roles: frozenset[str]
    tier: str | None
    expires_at: float
    token_id: str | None = None
    """The ``jti``: what a revocation names; None when the token has none."""
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Every verified claim, for the gateway's own tokens' extra claims."""


class InvalidToken(Exception):
    """The token was refused; ``reason`` is a short sentence safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKey(InvalidToken):
    """The token names a ``kid`` the key set does not hold (yet: the issuer may have
    rotated its key, and a fetched set can be refreshed)."""

    def __init__(self) -> None:
        super().__init__("the token was signed by an unknown key")


def _reason_for(error: PyJWTError) -> str:
    # Subclasses come before their bases (InvalidSignatureError is a DecodeError).
    if isinstance(error, ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(error, MissingRequiredClaimError):
        # The claim name comes from our own required list, never from the token.
        return f"the token has no {error.claim!r} claim"
    if isinstance(error, InvalidAudienceError):
        return "the token is not meant for this service"
    if isinstance(error, InvalidIssuerError):
        return "the token's issuer is not trusted"
    if isinstance(error, InvalidSubjectError):
        return "the token's subject is not valid"
    if isinstance(error, InvalidIssuedAtError):
        return "the token's issued-at time is not valid"
    if isinstance(error, InvalidJTIError):
        return "the token's 'jti' claim is not a non-empty string"
    if isinstance(error, InvalidAlgorithmError):
        return "the token's algorithm is not accepted"
    if isinstance(error, InvalidSignatureError):
        return "the token's signature is not valid"
    if isinstance(error, DecodeError):
        return "the token is malformed"
    if isinstance(error, InvalidKeyError):
        return "the token cannot be checked with the configured key"
    return "the token is not valid"


class JwtVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        hs256_secret: str | None = None,
        jwks_file: Path | None = None,
        jwks_fetched: bool = False,
        roles_claim: str = "roles",
        leeway_s: float = DEFAULT_LEEWAY_S,
        max_lifetime_s: float | None = None,
        require_jti: bool = False,
    ) -> None:
        """``jwks_fetched``: the keys come later, from ``replace_keys`` (a JWKS URL's)."""
        if not issuer or not audience:
            raise ValueError("issuer and audience must not be empty")
        if [hs256_secret is not None, jwks_file is not None, jwks_fetched].count(True) != 1:
            raise ValueError("give exactly one of hs256_secret, jwks_file or jwks_fetched")
        if not math.isfinite(leeway_s) or leeway_s < 0:
            raise ValueError(f"leeway_s must be a finite number >= 0, got {leeway_s}")
        if not roles_claim:
            raise ValueError("roles_claim must not be empty")

        self._issuer = issuer
        self._audience = audience
        self._roles_claim = roles_claim
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_lifetime_s
        self._require_jti = require_jti
        self._secret: bytes | None = None
        self._jwks: Keys = {}
        if hs256_secret is not None:
            secret = hs256_secret.encode("utf-8")
            if len(secret) < MIN_HS256_SECRET_BYTES:
                raise ValueError(
                    f"hs256_secret is {len(secret)} bytes; HS256 needs at least "
                    f"{MIN_HS256_SECRET_BYTES} (RFC 7518 §3.2)"
                )
            self._secret = secret
            self._algorithm = "HS256"
        else:
            self._jwks = load_jwks_file(jwks_file) if jwks_file is not None else {}
            self._algorithm = "RS256"
        self._options: Options = {
            "require": list(REQUIRED_CLAIMS),
            # Key sizes are checked at construction; refuse rather than warn if one slips by.
            "enforce_minimum_key_length": True,
        }

    def replace_keys(self, keys: Keys) -> None:
        """Check tokens with this key set from now on (a JWKS URL fetched again)."""
        self._jwks = dict(keys)

    @staticmethod
    def looks_like_jwt(credential: str) -> bool:
        return _JWT_SHAPE.fullmatch(credential) is not None

    def verify(self, token: str) -> TokenClaims:
        try:
            key = self._key_for(token)
            payload = jwt.decode(
                token,
                key=key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options=self._options,
            )
        except PyJWTError as error:
            # Dropping the cause keeps PyJWT's text (which can quote the token's header)
            # out of logs as well as out of the reply.
            raise InvalidToken(_reason_for(error)) from None
        return self._claims(payload)

    def _key_for(self, token: str) -> bytes | jwt.PyJWK:
        if self._secret is not None:
            return self._secret
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None:
            if len(self._jwks) == 1:
                return next(iter(self._jwks.values()))
            raise InvalidToken("the token does not say which key signed it")
        key = self._jwks.get(kid)
        if key is None:
            raise UnknownKey()
        return key

    def _claims(self, payload: dict[str, Any]) -> TokenClaims:
        subject = payload["sub"]  # PyJWT has checked it is present and a string
        if not subject:
            raise InvalidToken("the token's subject is empty")
        expires_at = payload["exp"]
        # PyJWT accepts anything int() accepts; RFC 7519 says a JSON number.
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise InvalidToken("the token's 'exp' claim is not a number")
        if self._max_lifetime_s is not None and expires_at > time.time() + self._max_lifetime_s:
            raise InvalidToken("the token lives longer than this gateway accepts")
        tier = payload.get("tier")
        if tier is not None and (not isinstance(tier, str) or not tier):
            raise InvalidToken("the token's 'tier' claim is not a non-empty string")
        token_id = payload.get("jti")
        if token_id is not None and (not isinstance(token_id, str) or not token_id):
            raise InvalidToken("the token's 'jti' claim is not a non-empty string")
        if token_id is None and self._require_jti:
            raise InvalidToken("the token has no 'jti' claim")
        return TokenClaims(
            subject=subject,
            roles=self._roles(payload.get(self._roles_claim)),
            tier=tier,
            expires_at=float(expires_at),
            token_id=token_id,
            payload=payload,
        )

    def _roles(self, claim: object) -> frozenset[str]:
        if claim is None:
            return frozenset()
        if isinstance(claim, str):
            names = claim.split()
        elif isinstance(claim, list) and all(isinstance(name, str) for name in claim):
            names = claim
        else:
            raise InvalidToken("the token's roles claim is not a list or a string of names")
        return frozenset(names) & KNOWN_ROLES
