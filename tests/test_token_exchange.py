"""Access tokens traded for API keys, and bearer tokens revoked by their ``jti``, through
two gateway replicas sharing one Redis, in front of a scripted backend."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest
import redis.asyncio as redis

from gateway.access.revoked import RevokedTokens
from switchyard.redis_server import LocalRedis
from tests.conftest import make_key
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, gateway_process

SECRET = "an-identity-providers-secret-long-enough-for-hs256"
SIGNING_KEY = "the-gateways-own-signing-key-long-enough-for-hs256"
ISSUER, AUDIENCE = "switchyard", "switchyard-gateway"
MAX_LIFETIME_S = 7200
LEEWAY_S = 30


@pytest.fixture(scope="module")
def replicas(redis_server: LocalRedis) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateways sharing one Redis, the identity provider's secret and the signing key."""
    settings = {
        "redis_url": redis_server.url,
        "jwt_hs256_secret": SECRET,
        "token_signing_key": SIGNING_KEY,
        "jwt_max_lifetime_s": str(MAX_LIFETIME_S),
        "auth_failures_per_minute": "0",  # throttling has its own tests
    }
    with scripted_backend() as backend:
        backends = backends_of(backend)
        with (
            gateway_process(backends, **settings) as first,
            gateway_process(backends, **settings) as second,
        ):
            yield first, second


def backends_of(scripted: ScriptedBackend) -> dict[str, str]:
    return {name: scripted.address for name in ("classifier", "ner", "summarizer")}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def classify(gateway: GatewayProcess, credential: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/classify", json={"text": "x"}, headers=bearer(credential))


def provider_token(jti: str | None, exp: int) -> str:
    payload = {"sub": "user-9", "iss": ISSUER, "aud": AUDIENCE, "exp": exp, "roles": ["client"]}
    if jti is not None:
        payload["jti"] = jti
    return jwt.encode(payload, SECRET, algorithm="HS256")


def exchange(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/auth/token", headers=bearer(key))


def revocation_ttl(redis_server: LocalRedis, jti: str) -> int:
    async def read() -> int:
        client = redis.Redis.from_url(redis_server.url)
        try:
            return int(await client.ttl(RevokedTokens(client).key(jti)))
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_a_revoked_jti_is_refused_on_every_replica_until_the_token_expires(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis, admin_key: str
) -> None:
    first, second = replicas
    exp = int(time.time()) + 600
    revoked_jti, kept_jti = uuid.uuid4().hex, uuid.uuid4().hex
    revoked, kept = provider_token(revoked_jti, exp), provider_token(kept_jti, exp)
    assert classify(second, revoked).status_code == 200

    answer = httpx.post(
        f"{first.url}/v1/admin/tokens/revoke",
        json={"jti": revoked_jti, "exp": exp, "reason": "leaked"},
        headers=bearer(admin_key),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["jti"] == revoked_jti

    for gateway in (second, first):
        refused = classify(gateway, revoked)
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "the token was revoked"
        assert classify(gateway, kept).status_code == 200
    # Kept until the token expires (plus the leeway for clock skew), and no longer.
    ttl = revocation_ttl(redis_server, revoked_jti)
    assert exp - time.time() < ttl <= exp - time.time() + LEEWAY_S + 2

    # No expiry given: kept for the longest lifetime a token may have here.
    unnamed = uuid.uuid4().hex
    answer = httpx.post(
        f"{first.url}/v1/admin/tokens/revoke", json={"jti": unnamed}, headers=bearer(admin_key)
    )
    assert answer.json()["ttl_s"] == MAX_LIFETIME_S + LEEWAY_S
    assert MAX_LIFETIME_S < revocation_ttl(redis_server, unnamed) <= MAX_LIFETIME_S + LEEWAY_S


def test_revoking_tokens_needs_the_admin_role_and_a_valid_body(
    replicas: tuple[GatewayProcess, GatewayProcess], client_key: str, admin_key: str
) -> None:
    url = f"{replicas[0].url}/v1/admin/tokens/revoke"
    assert httpx.post(url, json={"jti": "x"}, headers=bearer(client_key)).status_code == 403
    for body in ({}, {"jti": ""}, {"jti": "x", "exp": "soon"}, {"jti": "x", "extra": 1}):
        answer = httpx.post(url, json=body, headers=bearer(admin_key))
        assert answer.status_code == 400, body


def test_tokens_longer_lived_than_the_gateway_accepts_are_refused(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    far = provider_token(uuid.uuid4().hex, int(time.time()) + MAX_LIFETIME_S + 3600)
    refused = classify(replicas[0], far)
    assert refused.status_code == 401
    assert "longer" in refused.json()["error"]["message"]


def test_a_key_traded_for_a_token_that_works_on_every_replica_until_revoked(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis
) -> None:
    first, second = replicas
    key = make_key(redis_server.url, "client", "pro")
    traded = exchange(first, key)
    assert traded.status_code == 200, traded.text
    body = traded.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert traded.headers["cache-control"] == "no-store"
    token = body["access_token"]
    claims = jwt.decode(token, SIGNING_KEY, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"].startswith("key:") and claims["tier"] == "pro" and claims["jti"]

    answered = classify(second, token)
    assert answered.status_code == 200, answered.text
    # A client key's token is a client's: no admin routes.
    assert httpx.get(f"{second.url}/v1/admin/keys", headers=bearer(token)).status_code == 403

    logged_out = httpx.post(f"{second.url}/v1/auth/revoke", headers=bearer(token))
    assert logged_out.status_code == 204, logged_out.text
    for gateway in (first, second):
        refused = classify(gateway, token)
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "the token was revoked"
    # The key itself still works, and trades for a fresh token (a refresh).
    assert classify(first, exchange(first, key).json()["access_token"]).status_code == 200


def test_an_admin_keys_token_is_an_admins(
    replicas: tuple[GatewayProcess, GatewayProcess], admin_key: str
) -> None:
    token = exchange(replicas[0], admin_key).json()["access_token"]
    assert httpx.get(f"{replicas[1].url}/v1/admin/keys", headers=bearer(token)).status_code == 200


def test_the_keys_limits_apply_to_its_token_counted_with_the_key(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis
) -> None:
    first, second = replicas
    key = make_key(redis_server.url, "client", "enterprise", per_minute=2)
    traded = exchange(first, key)  # counted: one of the two
    token = traded.json()["access_token"]
    answered = classify(second, token)
    assert answered.status_code == 200
    assert answered.headers["x-ratelimit-limit"] == "2"
    statuses = [classify(first, token).status_code for _ in range(3)]
    assert 429 in statuses
    # The key and its token share one count: the key is spent too.
    assert classify(second, key).status_code == 429


def test_bad_keys_tokens_and_revoked_keys_cannot_trade(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis, admin_key: str
) -> None:
    first, second = replicas
    assert exchange(first, "sy_abcdefghij_" + "0" * 48).status_code == 401
    missing = httpx.post(f"{first.url}/v1/auth/token")
    assert missing.status_code == 401
    provider = provider_token(uuid.uuid4().hex, int(time.time()) + 300)
    assert exchange(first, provider).status_code == 400

    made = httpx.post(
        f"{first.url}/v1/admin/keys", json={"owner": "leaving"}, headers=bearer(admin_key)
    ).json()
    issued = exchange(first, made["key"]).json()["access_token"]
    deleted = httpx.delete(f"{first.url}/v1/admin/keys/{made['id']}", headers=bearer(admin_key))
    assert deleted.status_code == 204
    assert exchange(second, made["key"]).status_code == 401
    # A token issued before lives until it expires or is revoked (as documented).
    assert classify(second, issued).status_code == 200


def test_only_a_token_can_log_itself_out(
    replicas: tuple[GatewayProcess, GatewayProcess], client_key: str
) -> None:
    gateway = replicas[0]
    with_key = httpx.post(f"{gateway.url}/v1/auth/revoke", headers=bearer(client_key))
    assert with_key.status_code == 400
    no_jti = provider_token(None, int(time.time()) + 300)
    answer = httpx.post(f"{gateway.url}/v1/auth/revoke", headers=bearer(no_jti))
    assert answer.status_code == 400
    assert "jti" in answer.json()["error"]["message"]
    assert httpx.post(f"{gateway.url}/v1/auth/revoke").status_code == 401
