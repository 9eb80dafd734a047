"""``switchyard serve <service>`` and ``switchyard gateway``: run one model service, or
the HTTP gateway, in this process (as a container, or the launcher's child, runs it)."""

from __future__ import annotations

import argparse
import importlib

from switchyard.service_table import SERVICE_NAMES


def run_service(args: argparse.Namespace) -> int:
    # Each service imports only its own model code (and torch) in its own process:
    # services/<name>/service.py, for each name of the service table.
    service = importlib.import_module(f"services.{args.service}.service")
    return int(service.main())


def run_gateway(args: argparse.Namespace) -> int:
    from gateway.server import run_gateway

    return run_gateway()


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run one model service in this process")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.set_defaults(run=run_service)

    gateway = commands.add_parser(
        "gateway", help="run the HTTP gateway (settings from SWITCHYARD_GATEWAY_*)"
    )
    gateway.set_defaults(run=run_gateway)
