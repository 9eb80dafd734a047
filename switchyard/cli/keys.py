"""``switchyard keys create|list|revoke``: API keys, straight in the Redis the gateways
share (``REDIS_URL``, or the local system's from its run-state file)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis

from gateway.access.keys import ROLES, KeyStore
from switchyard.run_state import redis_url

T = TypeVar("T")


def _with_store(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    url = redis_url()
    if url is None:
        raise SystemExit("no Redis: set REDIS_URL, or start the local system with switchyard up")

    async def run() -> T:
        client = redis.Redis.from_url(url)
        try:
            return await action(KeyStore(client))
        finally:
            await client.aclose()

    return asyncio.run(run())


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
