"""Invalid credentials throttled per client address, counted across two gateway replicas
sharing one Redis: past the limit an address gets 429 with Retry-After, before any key
check; a missing credential never counts, and other addresses are not affected.

The replicas trust the loopback proxy, so each test speaks for its own addresses with
``X-Forwarded-For``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import jwt
import pytest

from gateway.access.memory import MemoryFailureCounter
from gateway.access.throttle import AuthThrottle
from gateway.errors.refusals import RateLimited
from switchyard.redis_server import LocalRedis
from tests.scripted_backend import scripted_backend
from tests.support import GatewayProcess, gateway_process

PER_MINUTE = 5
SECRET = "an-identity-providers-secret-long-enough-for-hs256"
BAD_KEY = "sy_abcdefghij_" + "0" * 48
_addresses = itertools.count(1)


def new_address() -> str:
    """An address no other test has used (their counts last a minute)."""
    number = next(_addresses)
    return f"10.9.{number // 256}.{number % 256}"


@pytest.fixture(scope="module")
def replicas(redis_server: LocalRedis) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    settings = {
        "redis_url": redis_server.url,
        "jwt_hs256_secret": SECRET,
        "trusted_proxies": "127.0.0.1",
        "auth_failures_per_minute": str(PER_MINUTE),
    }
    with scripted_backend() as backend:
        backends = {name: backend.address for name in ("classifier", "ner", "summarizer")}
        with (
            gateway_process(backends, **settings) as first,
            gateway_process(backends, **settings) as second,
        ):
            yield first, second


def classify(gateway: GatewayProcess, address: str, credential: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": address}
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    return httpx.post(f"{gateway.url}/v1/classify", json={"text": "x"}, headers=headers)


def test_bad_keys_over_two_replicas_get_401s_then_429_until_the_minute_ends(
    replicas: tuple[GatewayProcess, GatewayProcess], client_key: str
) -> None:
    address = new_address()
    statuses = [classify(replicas[n % 2], address, BAD_KEY).status_code for n in range(PER_MINUTE)]
    assert statuses == [401] * PER_MINUTE
    for gateway in replicas:
        throttled = classify(gateway, address, BAD_KEY)
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        assert throttled.json()["error"]["code"] == "rate_limited"
        assert "invalid credentials" in throttled.json()["error"]["message"]
    # Refused before any key check: a valid key from that address waits too.
    assert classify(replicas[0], address, client_key).status_code == 429
    # Another address is not affected.
    assert classify(replicas[0], new_address(), client_key).status_code == 200


def test_a_missing_credential_never_counts(
    replicas: tuple[GatewayProcess, GatewayProcess], client_key: str
) -> None:
    address = new_address()
    for n in range(PER_MINUTE * 3):
        assert classify(replicas[n % 2], address, None).status_code == 401
    assert classify(replicas[0], address, client_key).status_code == 200
    assert classify(replicas[1], address, BAD_KEY).status_code == 401


def test_bad_and_expired_tokens_count_as_invalid_credentials(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    address = new_address()
    expired = jwt.encode(
        {"sub": "u", "iss": "switchyard", "aud": "switchyard-gateway", "exp": 1},
        SECRET,
        algorithm="HS256",
    )
    forged = jwt.encode({"sub": "u"}, "another-secret-that-is-long-enough-too!!", algorithm="HS256")
    for n in range(PER_MINUTE):
        token = expired if n % 2 else forged
        assert classify(replicas[n % 2], address, token).status_code == 401
    assert classify(replicas[1], address, forged).status_code == 429


def test_admin_routes_count_invalid_credentials_too(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    address = new_address()
    headers = {"X-Forwarded-For": address, "Authorization": f"Bearer {BAD_KEY}"}
    url = f"{replicas[0].url}/v1/admin/keys"
    statuses = [httpx.get(url, headers=headers).status_code for _ in range(PER_MINUTE + 1)]
    assert statuses == [401] * PER_MINUTE + [429]


async def test_in_process_counts_block_past_the_limit_and_a_new_window_lets_through() -> None:
    now = [1000.0]
    throttle = AuthThrottle(MemoryFailureCounter(), per_minute=2, clock=lambda: now[0])
    await throttle.failed("a")
    throttle.check("a")
    await throttle.failed("a")  # the limit: this one is still a 401, the next is refused
    with pytest.raises(RateLimited) as refused:
        throttle.check("a")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    throttle.check("b")
    with pytest.raises(RateLimited):
        await throttle.failed("a")
    # Once the window is over (the clock moved on rather than waited for), "a" is let in.
    now[0] += 61
    throttle.check("a")


async def test_a_limit_of_zero_counts_nothing() -> None:
    counter = MemoryFailureCounter()
    throttle = AuthThrottle(counter, per_minute=0)
    for _ in range(10):
        await throttle.failed("a")
    throttle.check("a")
    assert await counter.count("a", 60) == (1, 60)
