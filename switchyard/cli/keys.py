"""``switchyard keys create|list|revoke``: API keys, and ``switchyard keys revoke-token``:
bearer tokens by their ``jti``, straight in the Redis the gateways share (``REDIS_URL``,
or the local system's from its run-state file)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis

from gateway.access.jwt_auth import DEFAULT_LEEWAY_S
from gateway.access.keys import ROLES, KeyStore
from gateway.access.revoked import RevokedTokens, revocation_ttl_s
from gateway.settings import GatewaySettings
from switchyard.run_state import redis_url

T = TypeVar("T")


def _with_client(action: Callable[[redis.Redis], Awaitable[T]]) -> T:
    url = redis_url()
    if url is None:
        raise SystemExit("no Redis: set REDIS_URL, or start the local system with switchyard up")

    async def run() -> T:
        client = redis.Redis.from_url(url)
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _with_store(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    return _with_client(lambda client: action(KeyStore(client)))


def create(args: argparse.Namespace) -> int:
    limits = json.loads(args.limits) if args.limits else {}
    record, key = _with_store(lambda keys: keys.create(args.owner, args.role, args.tier, limits))
    print(
        f"made key {record.id} for {record.owner} (role {record.role}, tier {record.tier});"
        " it is shown once:",
        file=sys.stderr,
    )
    print(key)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    for record in _with_store(lambda keys: keys.list()):
        state = "revoked" if record.revoked else "live"
        print(f"{record.id}  {state:<7}  {record.role:<8}  {record.tier:<10}  {record.owner}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    if not _with_store(lambda keys: keys.revoke(args.id)):
        print(f"no key {args.id}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}", file=sys.stderr)
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    # The gateways' own settings (from the environment) say how long a token may live,
    # and so how long a revocation that names no expiry is kept.
    max_lifetime_s = GatewaySettings().jwt_max_lifetime_s
    ttl_s = revocation_ttl_s(args.expires_at, max_lifetime_s, DEFAULT_LEEWAY_S)

    async def revoke(client: redis.Redis) -> None:
        await RevokedTokens(client).revoke(args.jti, ttl_s, args.reason)

    _with_client(revoke)
    print(f"revoked tokens with jti {args.jti} for {ttl_s} s", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="make, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    made = actions.add_parser("create", help="make a key and print it (once)")
    made.add_argument("--owner", required=True)
    made.add_argument("--role", choices=ROLES, default="client")
    made.add_argument("--tier", default="free")
    made.add_argument("--limits", help='overrides as JSON, e.g. {"per_minute": 20}')
    made.set_defaults(run=create)
    listed = actions.add_parser("list", help="every key's id, state, role, tier and owner")
    listed.set_defaults(run=list_keys)
    revoked = actions.add_parser("revoke", help="revoke a key by its id")
    revoked.add_argument("id")
    revoked.set_defaults(run=revoke)
    token = actions.add_parser("revoke-token", help="revoke bearer tokens by their jti")
    token.add_argument("jti")
    token.add_argument(
        "--expires-at",
        type=float,
        help="the token's exp (epoch seconds): the revocation is kept until then"
        " (default: the longest token lifetime, jwt_max_lifetime_s)",
    )
    token.add_argument("--reason", default="", help="why, for the audit trail")
    token.set_defaults(run=revoke_token)
