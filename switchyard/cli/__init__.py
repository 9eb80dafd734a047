"""The ``switchyard`` command: ``serve`` and ``gateway`` run one part in this process,
``up`` the local system, ``keys``, ``rollout``, ``experiment`` and ``backends`` are an
operator's, ``jobs`` runs batch jobs, and ``models`` prepares the starter models.

Each command lives in a module of this package and adds its own parser. The commands are
the only part of ``switchyard`` that imports ``gateway`` or ``services``: the rest (the
clients, the generated messages, the service table, the process machinery) is the ground
floor those two build on. A model service's or the gateway's code is imported only by the
command that runs it, so that ``switchyard serve ner`` loads no other model's code and the
gateway image, which has no torch, runs every command but ``serve`` and ``models``.
"""

from __future__ import annotations

import argparse

from switchyard.cli import backends, experiments, jobs, keys, models, rollout, serve, up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description="The ``switchyard`` command.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parsers(commands)
    up.add_parser(commands)
    keys.add_parser(commands)
    rollout.add_parser(commands)
    experiments.add_parser(commands)
    backends.add_parser(commands)
    jobs.add_parser(commands)
    models.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))
