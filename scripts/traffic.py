"""Classify requests from many callers at once, to watch a rollout: each caller has an API
key of its own (made through the admin API and revoked at the end), so the sticky
assignment spreads them over the versions as real callers would be spread.

    python scripts/traffic.py --callers 200 --requests 3000

The gateway and the admin key come from ``--url`` / ``--admin-key``, or from the local
system's run-state file. Every 200 answers it prints how many each version gave, by
status.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import Counter

import httpx

from switchyard.run_state import read_run_state

TEXTS = [
    "I love this, it works perfectly",
    "Terrible, it broke at once",
    "Fine, nothing special",
    "Best purchase this year",
]


async def make_keys(
    http: httpx.AsyncClient, admin: dict[str, str], count: int
) -> list[dict[str, str]]:
    keys = []
    for number in range(count):
        reply = await http.post(
            "/v1/admin/keys",
            json={"owner": f"traffic-{number}", "role": "client", "tier": "pro"},
            headers=admin,
        )
        reply.raise_for_status()
        keys.append(reply.json())
    return keys


def report(counts: Counter[tuple[str, int]]) -> str:
    versions = sorted({version for version, _ in counts})
    parts = []
    for version in versions:
        statuses = ", ".join(
            f"{status}: {n}" for (v, status), n in sorted(counts.items()) if v == version
        )
        parts.append(f"{version or '(none)'} [{statuses}]")
    return "  ".join(parts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--admin-key")
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    state = read_run_state()
    url = args.url or state.get("gateway_url")
    admin_key = args.admin_key or state.get("admin_key")
    if not url or not admin_key:
        raise SystemExit("give --url and --admin-key, or start the local system first")
    admin = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        keys = await make_keys(http, admin, args.callers)
        counts: Counter[tuple[str, int]] = Counter()
        numbers = itertools.count()

        async def caller() -> None:
            while (number := next(numbers)) < args.requests:
                key = keys[number % len(keys)]["key"]
                reply = await http.post(
                    "/v1/classify",
                    json={"text": TEXTS[number % len(TEXTS)]},
                    headers={"X-API-Key": key, "Cache-Control": "no-cache"},
                )
                counts[(reply.headers.get("x-model-version", ""), reply.status_code)] += 1
                if sum(counts.values()) % 200 == 0:
                    print(report(counts), flush=True)

        try:
            await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        finally:
            for key in keys:
                await http.delete(f"/v1/admin/keys/{key['id']}", headers=admin)
        print("done:", report(counts))


if __name__ == "__main__":
    asyncio.run(main())
