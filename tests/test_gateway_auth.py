"""Keys, tokens, roles and rate limits through two gateway replicas sharing one Redis,
in front of a scripted backend (these tests are about the gateway's own decisions)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from httpx_sse import connect_sse

from switchyard.redis_server import LocalRedis, local_redis
from tests.conftest import make_key
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, free_port, gateway_process

SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
ISSUER, AUDIENCE = "switchyard", "switchyard-gateway"


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


def backends_of(scripted: ScriptedBackend) -> dict[str, str]:
    return {name: scripted.address for name in ("classifier", "ner", "summarizer")}


@pytest.fixture(scope="module")
def replicas(
    scripted: ScriptedBackend, redis_server: LocalRedis
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateways sharing one Redis, as two replicas behind a balancer."""
    settings = {"redis_url": redis_server.url, "jwt_hs256_secret": SECRET}
    with (
        gateway_process(backends_of(scripted), **settings) as first,
        gateway_process(backends_of(scripted), **settings) as second,
    ):
        yield first, second


def classify(gateway: GatewayProcess, key: str | None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{gateway.url}/v1/classify", json={"text": "x"}, headers=headers)


def token(roles: list[str], *, secret: str = SECRET, **claims: object) -> str:
    now = int(time.time())
    payload = {"sub": "user-7", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300,
               "roles": roles, **claims}  # fmt: skip
    return jwt.encode(payload, secret, algorithm="HS256")


def test_unknown_callers_are_401_with_a_challenge(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    gateway = replicas[0]
    for key in (None, "sy_abcdefghij_" + "0" * 48, "not-a-key", "sy_short"):
        reply = classify(gateway, key)
        assert reply.status_code == 401, key
        assert reply.headers["www-authenticate"].startswith('Bearer realm="switchyard"')
        assert reply.json()["error"]["code"] == "unauthenticated"
    # Public routes stay public.
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    assert httpx.get(f"{gateway.url}/").status_code == 200


def test_keys_made_by_an_admin_work_and_revocation_holds_on_every_replica(
    replicas: tuple[GatewayProcess, GatewayProcess], admin_key: str, client_key: str
) -> None:
    first, second = replicas
    admin = {"Authorization": f"Bearer {admin_key}"}
    made = httpx.post(
        f"{first.url}/v1/admin/keys", json={"owner": "team-a", "tier": "pro"}, headers=admin
    )
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["id"]
    assert key.startswith("sy_") and key_id in key
    assert classify(first, key).status_code == 200
    assert classify(second, key).status_code == 200

    listed = httpx.get(f"{second.url}/v1/admin/keys", headers=admin).json()["keys"]
    assert key_id in {k["id"] for k in listed}
    assert key not in json.dumps(listed)

    assert httpx.delete(f"{first.url}/v1/admin/keys/{key_id}", headers=admin).status_code == 204
    assert classify(second, key).status_code == 401
    assert classify(first, key).status_code == 401

    # A client key on an admin route is known but not allowed.
    client = {"X-API-Key": client_key}
    assert httpx.get(f"{first.url}/v1/admin/keys", headers=client).status_code == 403


def test_a_revoked_keys_stream_tokens_stop_opening_streams_on_every_replica(
    replicas: tuple[GatewayProcess, GatewayProcess], admin_key: str
) -> None:
    first, second = replicas
    admin = {"Authorization": f"Bearer {admin_key}"}
    made = httpx.post(f"{first.url}/v1/admin/keys", json={"owner": "page"}, headers=admin)
    key, key_id = made.json()["key"], made.json()["id"]
    auth = {"Authorization": f"Bearer {key}"}
    issued = [
        httpx.post(f"{first.url}/v1/summarize/stream-token", headers=auth).json()["stream_token"]
        for _ in range(2)
    ]
    assert httpx.delete(f"{first.url}/v1/admin/keys/{key_id}", headers=admin).status_code == 204
    for gateway, stream_token in zip((first, second), issued, strict=True):
        params = {"text": "x", "stream_token": stream_token}
        refused = httpx.get(f"{gateway.url}/v1/summarize/stream", params=params)
        assert refused.status_code == 401, refused.text
        assert "revoked" in refused.json()["error"]["message"]


def test_bearer_tokens_are_checked_and_give_roles(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    gateway = replicas[1]
    assert classify(gateway, token(["client"])).status_code == 200
    admin_only = httpx.get(
        f"{gateway.url}/v1/admin/keys", headers={"Authorization": f"Bearer {token(['client'])}"}
    )
    assert admin_only.status_code == 403
    expired = token(["client"], exp=int(time.time()) - 3600)
    other_secret = token(["client"], secret="another-secret-that-is-long-enough-too!!")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = jwt.encode({"sub": "x"}, SECRET, algorithm="HS256").split(".")[1]
    unsigned = f"{header}.{body}."
    for bad in (expired, other_secret, unsigned, token(["client"], aud="someone-else")):
        reply = classify(gateway, bad)
        assert reply.status_code == 401
        assert bad not in reply.text


def test_requests_over_two_replicas_are_allowed_exactly_up_to_the_limit(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis
) -> None:
    key = make_key(redis_server.url, "client", "free", per_minute=5, per_day=1000)
    statuses = [classify(replicas[i % 2], key).status_code for i in range(9)]
    assert statuses == [200] * 5 + [429] * 4
    refused = classify(replicas[0], key)
    assert int(refused.headers["retry-after"]) >= 1
    assert "minute" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["x-ratelimit-limit"] == "5"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert '"burst";q=5;w=60' in refused.headers["ratelimit-policy"]


def test_the_daily_quota_is_shared_and_named(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis
) -> None:
    key = make_key(redis_server.url, "client", "free", per_minute=100, per_day=3)
    statuses = [classify(replicas[i % 2], key).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = classify(replicas[1], key)
    assert "day" in refused.json()["error"]["message"]
    assert "daily" in refused.headers["ratelimit"]


def test_stream_tokens_and_caps_per_tier(
    replicas: tuple[GatewayProcess, GatewayProcess], redis_server: LocalRedis
) -> None:
    gateway = replicas[0]
    key = make_key(
        redis_server.url, "client", "free", max_new_tokens=8, tokens_per_day=10, per_minute=100
    )
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=auth, timeout=60) as http:
        over_cap = http.post("/v1/summarize/stream", json={"text": "x", "max_new_tokens": 9})
        assert over_cap.status_code == 400
        assert "at most 8" in over_cap.json()["error"]["message"]

        # EventSource cannot send the key: a single-use token opens one stream.
        issued = http.post("/v1/summarize/stream-token").json()["stream_token"]
        params = {"text": "x", "stream_token": issued}
        with (
            httpx.Client(base_url=gateway.url) as keyless,
            connect_sse(keyless, "GET", "/v1/summarize/stream", params=params) as source,
        ):
            assert source.response.status_code == 200
            assert [e.event for e in source.iter_sse()][-1] == "error"  # the scripted failure
        again = httpx.get(f"{gateway.url}/v1/summarize/stream", params=params)
        assert again.status_code == 401

        # The scripted stream sends 3 pieces a time (the stream above spent 3 already);
        # the budget of 10 is checked before each stream.
        spent = 3
        while True:
            reply = http.post("/v1/summarize/stream", json={"text": "x"})
            if reply.status_code == 429:
                break
            assert reply.status_code == 200
            spent += 3
            # Each stream's tokens are counted as it ends; one more stream may start
            # before the last count lands.
            assert spent <= 15
        assert "tokens" in reply.json()["error"]["message"]
        assert spent >= 10


def test_a_spoofed_forwarded_for_is_not_believed(
    replicas: tuple[GatewayProcess, GatewayProcess], client_key: str
) -> None:
    gateway = replicas[0]
    reply = classify(gateway, client_key, **{"X-Forwarded-For": "6.6.6.6"})
    request_id = reply.headers["x-request-id"]
    logged = gateway.wait_log(lambda r: r.get("request_id") == request_id and "status" in r)
    assert logged["client"] == "127.0.0.1"
    assert client_key not in json.dumps(gateway.logs)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_down_and_back_in_either_failure_mode(
    mode: str, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    # The bootstrap admin key is verified without Redis (a secret given to the gateway),
    # so only the rate limits depend on Redis here.
    admin_key = "sy_adminadmin_" + "a" * 48
    key_file = tmp_path / "admin.key"
    key_file.write_text(admin_key)
    port = free_port()
    redis_dir = tmp_path / "redis"
    first = LocalRedis(redis_dir, port)
    try:
        with gateway_process(
            backends_of(scripted),
            redis_url=first.url,
            admin_key_file=str(key_file),
            rate_limit_failure=mode,
        ) as gateway:
            assert classify(gateway, admin_key).status_code == 200
            first.stop()
            down = classify(gateway, admin_key)
            if mode == "open":
                assert down.status_code == 200
                gateway.wait_metric("switchyard_gateway_rate_limit_unavailable_total", {}, 1)
            else:
                assert down.status_code == 503
                assert down.json()["error"]["code"] == "unavailable"
            with local_redis(redis_dir, port):
                back = classify(gateway, admin_key)
                assert back.status_code == 200, back.text
                assert "x-ratelimit-remaining" in back.headers
    finally:
        first.stop()


def test_admin_key_from_a_secret_hash(scripted: ScriptedBackend, redis_server: LocalRedis) -> None:
    import hashlib

    key = "sy_secretadmn_" + "b" * 48
    digest = hashlib.sha256(key.encode()).hexdigest()
    with gateway_process(
        backends_of(scripted), redis_url=redis_server.url, admin_key_sha256=digest
    ) as gateway:
        listed = httpx.get(f"{gateway.url}/v1/admin/keys", headers={"X-API-Key": key})
        assert listed.status_code == 200


def test_stream_slots_are_capped_per_tier_across_replicas(
    replicas: tuple[GatewayProcess, GatewayProcess],
    redis_server: LocalRedis,
    scripted: ScriptedBackend,
) -> None:
    key = make_key(redis_server.url, "client", "free", max_streams=1, per_minute=100)
    auth = {"Authorization": f"Bearer {key}"}
    scripted.script.release.clear()
    scripted.script.hold_streams = True
    try:
        with (
            httpx.Client(base_url=replicas[0].url, headers=auth, timeout=60) as one,
            one.stream("POST", "/v1/summarize/stream", json={"text": "x"}) as held,
        ):
            assert held.status_code == 200  # open: its first piece has arrived
            second = httpx.post(
                f"{replicas[1].url}/v1/summarize/stream", json={"text": "x"}, headers=auth
            )
            assert second.status_code == 429
            assert "1 summary stream" in second.json()["error"]["message"]
            scripted.script.release.set()
            list(held.iter_lines())
    finally:
        scripted.script.hold_streams = False
        scripted.script.release.set()
