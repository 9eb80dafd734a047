"""``switchyard backends list|add|remove``: the backend addresses the gateways call, as
the gateway's admin API lists them and operators add and remove them at run time."""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import quote

from switchyard.cli.admin_api import AdminApi, add_common_options
from switchyard.service_table import SERVICE_NAMES


def backends_list(args: argparse.Namespace) -> int:
    answer = AdminApi.from_args(args).call("GET", "/v1/admin/backends")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for b in answer["backends"]:
        health = "healthy" if b["healthy"] else "UNHEALTHY"
        origin = "added" if b["added"] else "settings"
        print(
            f"{b['service']:<11} {b['address']:<28} {health:<10} {origin:<9}"
            f" {', '.join(b['versions'])}"
        )
    return 0


def backends_add(args: argparse.Namespace) -> int:
    body = {"service": args.service, "address": args.address, "reason": args.reason}
    AdminApi.from_args(args).call("POST", "/v1/admin/backends", body)
    print(f"added {args.service} backend {args.address}", file=sys.stderr)
    return 0


def backends_remove(args: argparse.Namespace) -> int:
    path = f"/v1/admin/backends/{quote(args.service)}/{quote(args.address, safe='')}"
    AdminApi.from_args(args).call("DELETE", path)
    print(f"removed {args.service} backend {args.address}", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backends = commands.add_parser("backends", help="backend addresses the gateways call")
    backend_actions = backends.add_subparsers(dest="backends_command", required=True)
    listed = backend_actions.add_parser("list", help="every backend, its health and versions")
    add_common_options(listed, reason=False)
    listed.set_defaults(run=backends_list)
    added = backend_actions.add_parser("add", help="add a backend address (every replica)")
    added.add_argument("service", choices=SERVICE_NAMES)
    added.add_argument("address", help="host:port")
    add_common_options(added)
    added.set_defaults(run=backends_add)
    removed = backend_actions.add_parser("remove", help="remove an added backend address")
    removed.add_argument("service", choices=SERVICE_NAMES)
    removed.add_argument("address")
    add_common_options(removed, reason=False)
    removed.set_defaults(run=backends_remove)
