"""The steps of a model request, watched from inside one gateway (the app in this process,
with Redis and a scripted backend): the version is chosen once per request, whoever the
caller is, and a caller who is not let in hears 401 or 429 before any routing refusal."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import jwt
import pytest
import redis.asyncio as redis

from gateway.access.auth import Authenticator, Caller, Claim
from gateway.access.keys import KeyStore
from gateway.app import create_app
from gateway.limits.interfaces import LimitStorage
from gateway.limits.ratelimit import Decision
from gateway.routing.router import Router, Target
from gateway.settings import GatewaySettings
from switchyard.redis_server import LocalRedis
from tests.scripted_backend import Script, ScriptedBackend, scripted_backend

SECRET = "pipeline-test-secret-long-enough-for-hs256"
MODEL = f"pipeline-{uuid.uuid4().hex[:8]}"
"""A model no other test routes: its routing table is seeded in the session's Redis."""


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend(Script(model=MODEL, versions=("p1", "p0"))) as backend:
        yield backend


@pytest.fixture
def chosen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The identity each ``Router.choose`` call routed, in order."""
    calls: list[str] = []
    original = Router.choose

    def counted(
        self: Router, service: str, model: str, identity: str, pinned: str | None
    ) -> Target:
        calls.append(identity)
        return original(self, service, model, identity, pinned)

    monkeypatch.setattr(Router, "choose", counted)
    return calls


@pytest.fixture
async def gateway(
    scripted: ScriptedBackend, redis_server: LocalRedis, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app in this process, its lifespan run: p1 stable, p0 retired."""
    rollouts = tmp_path / "rollouts.json"
    versions = [{"version": "p1", "state": "stable"}, {"version": "p0", "state": "retired"}]
    rollouts.write_text(json.dumps({MODEL: {"versions": versions}}))
    settings = GatewaySettings(
        classifier_backends=[scripted.address],
        ner_backends=[],
        summarizer_backends=[scripted.address],
        redis_url=redis_server.url,
        jwt_hs256_secret=SECRET,
        rollouts_file=rollouts,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


async def new_key(client: redis.Redis, **limits: int) -> tuple[str, str]:
    """The caller id and the plain text of a new client key."""
    record, key = await KeyStore(client).create("pipeline-test", "client", "enterprise", limits)
    return f"key:{record.id}", key


def bearer(credential: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}", **headers}


def steps(reply: httpx.Response) -> set[str]:
    return {step.split(";")[0] for step in reply.headers["server-timing"].split(", ")}


async def test_an_api_key_request_is_routed_once_and_reads_the_cache_in_its_key_check(
    gateway: httpx.AsyncClient, client: redis.Redis, chosen: list[str]
) -> None:
    caller, key = await new_key(client)
    body = {"texts": [f"once {uuid.uuid4()}", f"twice {uuid.uuid4()}"]}
    for expected_cache in ("MISS", "HIT"):
        chosen.clear()
        reply = await gateway.post("/v1/classify", json=body, headers=bearer(key))
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-cache"] == expected_cache
        assert reply.headers["x-model-version"] == "p1"
        assert chosen == [caller]
    # The hit was read in the key's round trip: no cache lookup of its own.
    assert "cache" not in steps(reply)
    assert "auth" in steps(reply)


async def test_a_token_caller_and_a_stream_token_caller_are_routed_once(
    gateway: httpx.AsyncClient, client: redis.Redis, chosen: list[str]
) -> None:
    now = int(time.time())
    claims = {"sub": "pipeline-user", "iss": "switchyard", "aud": "switchyard-gateway",
              "exp": now + 300, "roles": ["client"]}  # fmt: skip
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    reply = await gateway.post("/v1/classify", json={"text": "x"}, headers=bearer(token))
    assert reply.status_code == 200, reply.text
    assert chosen == ["jwt:pipeline-user"]
    assert "auth" in steps(reply)

    caller, key = await new_key(client)
    issued = await gateway.post("/v1/summarize/stream-token", headers=bearer(key))
    assert issued.status_code == 200, issued.text
    chosen.clear()
    params = {"text": "x", "stream_token": issued.json()["stream_token"]}
    opened = await gateway.get("/v1/summarize/stream", params=params)
    assert opened.status_code == 200, opened.text
    assert "event: token" in opened.text
    assert chosen == [caller]
    assert "limit" in steps(opened)


async def test_routing_refusals_come_after_authentication_and_limits(
    gateway: httpx.AsyncClient, client: redis.Redis, chosen: list[str]
) -> None:
    _, key = await new_key(client)
    unknown_key = "sy_" + "a" * 10 + "_" + "0" * 48
    unknown_model = {"text": "x", "model": "no-such-model"}
    retired = {"X-Model-Version": "p0"}
    cases = [
        ({}, unknown_model, 401),
        (bearer(unknown_key), unknown_model, 401),
        (bearer(key), unknown_model, 404),
        (bearer(unknown_key, **retired), {"text": "x"}, 401),
        (bearer(key, **retired), {"text": "x"}, 410),
    ]
    for headers, body, status in cases:
        chosen.clear()
        reply = await gateway.post("/v1/classify", json=body, headers=headers)
        assert reply.status_code == status, (headers, body, reply.text)
        assert len(chosen) == (0 if not headers else 1)

    _, limited = await new_key(client, per_minute=1)
    first = await gateway.post(
        "/v1/classify", json={"text": "x"}, headers=bearer(limited, **retired)
    )
    assert first.status_code == 410
    second = await gateway.post(
        "/v1/classify", json={"text": "x"}, headers=bearer(limited, **retired)
    )
    assert second.status_code == 429


async def test_a_checked_caller_other_than_the_claimed_one_is_routed_again(
    gateway: httpx.AsyncClient,
    client: redis.Redis,
    chosen: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not expected of a key (its checked id is the one it claims); guarded all the same."""
    original = Authenticator.check_and_count

    async def another_caller(
        self: Authenticator, claim: Claim, limiter: LimitStorage, also_get: Sequence[str] = ()
    ) -> tuple[Caller, Decision | None, list[bytes | None] | None]:
        caller, decision, found = await original(self, claim, limiter, also_get)
        return dataclasses.replace(caller, id="key:someone-else"), decision, found

    monkeypatch.setattr(Authenticator, "check_and_count", another_caller)
    caller, key = await new_key(client)
    reply = await gateway.post("/v1/classify", json={"text": "x"}, headers=bearer(key))
    assert reply.status_code == 200, reply.text
    assert chosen == [caller, "key:someone-else"]
