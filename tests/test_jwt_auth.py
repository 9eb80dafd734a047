"""JWT bearer tokens: valid HS256 and RS256 tokens give claims; expired, early, foreign,
unsigned, re-signed and algorithm-confused tokens are refused with a safe reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.access.jwt_auth import InvalidToken, JwtVerifier, TokenClaims

ISSUER = "https://issuer.example"
AUDIENCE = "switchyard"
SECRET = "s" * 40
KID = "key-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "user-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "roles": ["client", "operator"],
    }
    for name, value in overrides.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update({"kid": KID, "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


@pytest.fixture
def hs_verifier() -> JwtVerifier:
    return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET)


@pytest.fixture
def rs_verifier(jwks_file: Path) -> JwtVerifier:
    return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks_file)


@pytest.fixture
def rs_token(rsa_key: rsa.RSAPrivateKey) -> Callable[..., str]:
    def sign(payload: dict[str, Any] | None = None, kid: str | None = KID) -> str:
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(payload or claims(), rsa_key, algorithm="RS256", headers=headers)

    return sign


def hs_token(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, SECRET, algorithm="HS256")


def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    reason = caught.value.reason
    assert reason == str(caught.value)
    if token:
        assert token not in reason
    for segment in token.split("."):
        if len(segment) >= 8:
            assert segment not in reason
    return reason


# Valid tokens


def test_valid_hs256_token_gives_its_claims(hs_verifier: JwtVerifier) -> None:
    payload = claims(tier="pro")
    got = hs_verifier.verify(hs_token(payload))
    assert got == TokenClaims(
        subject="user-42",
        roles=frozenset({"client", "operator"}),
        tier="pro",
        expires_at=float(payload["exp"]),
    )


def test_valid_rs256_token_gives_its_claims(
    rs_verifier: JwtVerifier, rs_token: Callable[..., str]
) -> None:
    got = rs_verifier.verify(rs_token(claims(roles=["admin"])))
    assert got.subject == "user-42"
    assert got.roles == frozenset({"admin"})
    assert got.tier is None


def test_roles_as_space_separated_string(hs_verifier: JwtVerifier) -> None:
    got = hs_verifier.verify(hs_token(claims(roles="client  admin")))
    assert got.roles == frozenset({"client", "admin"})


def test_unknown_roles_are_dropped(hs_verifier: JwtVerifier) -> None:
    got = hs_verifier.verify(hs_token(claims(roles=["client", "superuser", "root"])))
    assert got.roles == frozenset({"client"})


def test_missing_roles_claim_gives_no_roles(hs_verifier: JwtVerifier) -> None:
    assert hs_verifier.verify(hs_token(claims(roles=None))).roles == frozenset()


def test_roles_claim_name_is_configurable() -> None:
    verifier = JwtVerifier(
        issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET, roles_claim="scope"
    )
    got = verifier.verify(hs_token(claims(roles=None, scope="operator email")))
    assert got.roles == frozenset({"operator"})


def test_malformed_roles_claim_refused(hs_verifier: JwtVerifier) -> None:
    assert "roles" in refused(hs_verifier, hs_token(claims(roles=["client", 3])))


def test_single_key_jwks_accepts_token_without_kid(
    rs_verifier: JwtVerifier, rs_token: Callable[..., str]
) -> None:
    assert rs_verifier.verify(rs_token(kid=None)).subject == "user-42"


def test_expiry_within_leeway_accepted(hs_verifier: JwtVerifier) -> None:
    token = hs_token(claims(exp=int(time.time()) - 10))
    assert hs_verifier.verify(token).subject == "user-42"


# Time


def test_expired_token_beyond_leeway_refused(hs_verifier: JwtVerifier) -> None:
    token = hs_token(claims(exp=int(time.time()) - 120))
    assert refused(hs_verifier, token) == "the token has expired"


def test_token_not_valid_yet_refused(hs_verifier: JwtVerifier) -> None:
    token = hs_token(claims(nbf=int(time.time()) + 600))
    assert refused(hs_verifier, token) == "the token is not valid yet"


# Issuer, audience and required claims


def test_wrong_issuer_refused(hs_verifier: JwtVerifier) -> None:
    token = hs_token(claims(iss="https://evil.example"))
    assert refused(hs_verifier, token) == "the token's issuer is not trusted"


def test_wrong_audience_refused(hs_verifier: JwtVerifier) -> None:
    token = hs_token(claims(aud="another-service"))
    assert refused(hs_verifier, token) == "the token is not meant for this service"


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud"])
def test_missing_required_claim_refused_naming_it(hs_verifier: JwtVerifier, claim: str) -> None:
    token = hs_token(claims(**{claim: None}))
    assert refused(hs_verifier, token) == f"the token has no '{claim}' claim"


# Forged and confused tokens


def test_alg_none_token_refused(hs_verifier: JwtVerifier, rs_verifier: JwtVerifier) -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    token = f"{header}.{payload}."
    assert JwtVerifier.looks_like_jwt(token)
    assert refused(hs_verifier, token) == "the token's algorithm is not accepted"
    assert refused(rs_verifier, token) == "the token's algorithm is not accepted"


def test_token_signed_with_another_rsa_key_refused(
    rs_verifier: JwtVerifier, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), other_rsa_key, algorithm="RS256", headers={"kid": KID})
    assert refused(rs_verifier, token) == "the token's signature is not valid"


def test_hs256_signed_with_public_key_refused_by_rs256_verifier(
    rs_verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT refuses to sign HS256 with a PEM key, so forge the token by hand.
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    payload = b64url(json.dumps(claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64url(signature)}"
    assert refused(rs_verifier, token) == "the token's algorithm is not accepted"


def test_rs256_token_refused_by_hs256_verifier(
    hs_verifier: JwtVerifier, rs_token: Callable[..., str]
) -> None:
    assert refused(hs_verifier, rs_token()) == "the token's algorithm is not accepted"


def test_hs256_token_with_wrong_secret_refused(hs_verifier: JwtVerifier) -> None:
    token = jwt.encode(claims(), "t" * 40, algorithm="HS256")
    assert refused(hs_verifier, token) == "the token's signature is not valid"


def test_unknown_kid_refused(rs_verifier: JwtVerifier, rs_token: Callable[..., str]) -> None:
    assert refused(rs_verifier, rs_token(kid="key-9")) == "the token was signed by an unknown key"


@pytest.mark.parametrize(
    "garbage", ["not a token", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.!!!.abc", "", "...."]
)
def test_garbage_refused(hs_verifier: JwtVerifier, rs_verifier: JwtVerifier, garbage: str) -> None:
    assert refused(hs_verifier, garbage) == "the token is malformed"
    assert refused(rs_verifier, garbage) == "the token is malformed"


# Construction


def test_short_hs256_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, hs256_secret="x" * 31)


def test_exactly_one_key_source_required(jwks_file: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="exactly one"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET, jwks_file=jwks_file)


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"keys": "nope"}', '{"keys": []}', '{"keys": [{"kty": "nope"}]}'],
)
def test_invalid_jwks_file_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="JWKS file"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=path)


def test_missing_jwks_file_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JWKS file"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=tmp_path / "absent.json")


def test_jwks_with_private_key_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key))
    jwk["kid"] = KID
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    with pytest.raises(ValueError, match="private key"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=path)


# Telling JWTs from API keys


def test_looks_like_jwt(hs_verifier: JwtVerifier) -> None:
    assert JwtVerifier.looks_like_jwt(hs_token(claims()))
    assert not JwtVerifier.looks_like_jwt("sy_ab12cd34_xxxxxxxx")
    assert not JwtVerifier.looks_like_jwt("a.b")
    assert not JwtVerifier.looks_like_jwt("a.b.c.d")
    assert not JwtVerifier.looks_like_jwt("a b.c.d")


# The jti (what revokes a token) and the longest lifetime


def test_jti_is_read_and_may_be_required(hs_verifier: JwtVerifier) -> None:
    assert hs_verifier.verify(hs_token(claims(jti="t-1"))).token_id == "t-1"
    assert hs_verifier.verify(hs_token(claims())).token_id is None
    strict = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET, require_jti=True)
    assert refused(strict, hs_token(claims())) == "the token has no 'jti' claim"
    for bad in ("", 7, ["t"]):
        reason = refused(hs_verifier, hs_token(claims(jti=bad)))
        assert reason == "the token's 'jti' claim is not a non-empty string"


def test_tokens_living_longer_than_the_maximum_are_refused() -> None:
    verifier = JwtVerifier(
        issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET, max_lifetime_s=600
    )
    assert verifier.verify(hs_token(claims(exp=int(time.time()) + 500)))
    far = hs_token(claims(exp=int(time.time()) + 3600))
    assert refused(verifier, far) == "the token lives longer than this gateway accepts"
