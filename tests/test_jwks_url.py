"""Bearer tokens checked with the keys of a JWKS URL, served by a real local HTTP server:
a token signed with a served key works, a rotated key is found by the unknown-kid refresh,
a flood of unknown kids fetches at most once per interval, a failed fetch keeps the last
good keys; and a gateway started with the URL accepts the issuer's tokens."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.access.bearer import BearerTokens
from gateway.access.jwks import JwksFetcher
from gateway.access.jwt_auth import JwtVerifier
from gateway.access.memory import MemoryRevokedTokens
from gateway.errors.refusals import Unauthenticated
from gateway.limits.tiers import DEFAULT_TIERS
from tests.scripted_backend import scripted_backend
from tests.support import gateway_process

ISSUER, AUDIENCE = "https://issuer.example", "switchyard"
MIN_REFRESH_S = 10.0


@dataclass
class JwksServer:
    """A JWK Set at ``url``, replaceable, and how many times it was fetched."""

    url: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, *keys: tuple[str, rsa.RSAPrivateKey]) -> None:
        jwks = []
        for kid, key in keys:
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
            jwks.append(jwk)
        self.document = {"keys": jwks}


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    served = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with served.lock:
                served.hits += 1
            body = json.dumps(served.document).encode()
            self.send_response(served.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def first_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rotated_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed(key: rsa.RSAPrivateKey, kid: str, audience: str = AUDIENCE) -> str:
    now = int(time.time())
    payload = {"sub": "user-1", "iss": ISSUER, "aud": audience, "exp": now + 300,
               "roles": ["client"], "jti": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


class Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fetched_tokens(url: str, clock: Callable[[], float]) -> BearerTokens:
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_fetched=True)
    fetcher = JwksFetcher(url, verifier.replace_keys, min_refresh_s=MIN_REFRESH_S, clock=clock)
    return BearerTokens(
        dict(DEFAULT_TIERS), MemoryRevokedTokens(), external=verifier, fetcher=fetcher
    )


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_cannot_flood_the_issuer(
    jwks_server: JwksServer, first_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    tokens = fetched_tokens(jwks_server.url, clock)
    assert tokens.fetcher is not None
    jwks_server.publish(("k1", first_key))
    assert await tokens.fetcher.refresh()
    assert jwks_server.hits == 1
    caller = await tokens.caller_of(signed(first_key, "k1"))
    assert caller.id == "jwt:user-1" and "client" in caller.roles

    # The issuer rotates its key. Within the interval, the new kid is not fetched for.
    jwks_server.publish(("k2", rotated_key))
    with pytest.raises(Unauthenticated, match="unknown key"):
        await tokens.caller_of(signed(rotated_key, "k2"))
    assert jwks_server.hits == 1
    clock.now += MIN_REFRESH_S
    assert (await tokens.caller_of(signed(rotated_key, "k2"))).id == "jwt:user-1"
    assert jwks_server.hits == 2

    # A flood of made-up kids, at once and one after another: at most one fetch per interval.
    flood = [signed(rotated_key, f"made-up-{n}") for n in range(30)]
    for _ in range(2):
        clock.now += MIN_REFRESH_S
        outcomes = await asyncio.gather(
            *(tokens.caller_of(token) for token in flood), return_exceptions=True
        )
        assert all(isinstance(outcome, Unauthenticated) for outcome in outcomes)
        for token in flood[:5]:
            with pytest.raises(Unauthenticated):
                await tokens.caller_of(token)
    assert jwks_server.hits == 4
    await tokens.fetcher.close()


async def test_a_failed_fetch_keeps_the_last_good_keys(
    jwks_server: JwksServer, first_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    tokens = fetched_tokens(jwks_server.url, clock)
    assert tokens.fetcher is not None
    jwks_server.publish(("k1", first_key))
    assert await tokens.fetcher.refresh()
    jwks_server.status = 500
    assert not await tokens.fetcher.refresh()
    assert (await tokens.caller_of(signed(first_key, "k1"))).id == "jwt:user-1"
    jwks_server.status, jwks_server.document = 200, {"keys": "not a key set"}
    assert not await tokens.fetcher.refresh()
    assert (await tokens.caller_of(signed(first_key, "k1"))).id == "jwt:user-1"
    await tokens.fetcher.close()


async def test_an_unreachable_url_at_start_refuses_tokens_until_a_fetch_works(
    jwks_server: JwksServer, first_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    tokens = fetched_tokens(jwks_server.url, clock)
    assert tokens.fetcher is not None
    jwks_server.status = 503
    assert not await tokens.fetcher.refresh()
    with pytest.raises(Unauthenticated, match="unknown key"):
        await tokens.caller_of(signed(first_key, "k1"))
    jwks_server.status = 200
    jwks_server.publish(("k1", first_key))
    clock.now += MIN_REFRESH_S
    assert (await tokens.caller_of(signed(first_key, "k1"))).id == "jwt:user-1"
    await tokens.fetcher.close()


def test_a_gateway_checks_tokens_with_the_keys_at_its_jwks_url(
    jwks_server: JwksServer, first_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.publish(("k1", first_key))
    settings = {"jwks_url": jwks_server.url, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    with scripted_backend() as backend:
        backends = {name: backend.address for name in ("classifier", "ner", "summarizer")}
        with gateway_process(backends, **settings) as gateway:
            url = f"{gateway.url}/v1/classify"

            def status(token: str) -> int:
                headers = {"Authorization": f"Bearer {token}"}
                return httpx.post(url, json={"text": "x"}, headers=headers).status_code

            assert status(signed(first_key, "k1")) == 200
            assert status(signed(first_key, "k1", audience="elsewhere")) == 401
            assert status(signed(first_key, "unknown")) == 401
    assert jwks_server.hits >= 1
