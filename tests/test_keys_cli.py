"""``switchyard keys create|list|revoke|revoke-token`` against a real Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import redis.asyncio as redis

from gateway.access.keys import KeyStore, key_id_of
from gateway.access.revoked import RevokedTokens
from switchyard.redis_server import LocalRedis


def keys_command(redis_server: LocalRedis, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_server.url}
    return subprocess.run(
        [sys.executable, "-m", "switchyard", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verified(redis_server: LocalRedis, key: str) -> bool:
    async def check() -> bool:
        client = redis.Redis.from_url(redis_server.url)
        try:
            return await KeyStore(client).verify(key) is not None
        finally:
            await client.aclose()

    return asyncio.run(check())


def test_create_prints_the_key_once_on_its_own_line_then_list_and_revoke(
    redis_server: LocalRedis,
) -> None:
    made = keys_command(redis_server, "create", "--owner", "team-cli", "--tier", "pro")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = key_id_of(key)
    assert made.stdout == key + "\n" and key_id is not None
    assert verified(redis_server, key)

    listed = keys_command(redis_server, "list")
    line = next(x for x in listed.stdout.splitlines() if x.startswith(key_id))
    assert "live" in line and "team-cli" in line and "pro" in line
    assert key not in listed.stdout

    assert keys_command(redis_server, "revoke", key_id).returncode == 0
    assert not verified(redis_server, key)
    assert "revoked" in keys_command(redis_server, "list").stdout
    assert keys_command(redis_server, "revoke", "nosuchkey0").returncode == 1


def test_revoke_token_keeps_the_jti_refused_until_the_given_expiry(
    redis_server: LocalRedis,
) -> None:
    jti = "cli-" + str(time.time_ns())
    expires_at = int(time.time()) + 600
    done = keys_command(redis_server, "revoke-token", jti, "--expires-at", str(expires_at))
    assert done.returncode == 0, done.stderr
    assert jti in done.stderr

    async def read() -> tuple[bool, int | None]:
        client = redis.Redis.from_url(redis_server.url)
        try:
            revoked = RevokedTokens(client)
            return await revoked.is_revoked(jti), await revoked.ttl_s(jti)
        finally:
            await client.aclose()

    revoked, ttl_s = asyncio.run(read())
    assert revoked and ttl_s is not None
    assert expires_at - time.time() < ttl_s <= expires_at - time.time() + 32
