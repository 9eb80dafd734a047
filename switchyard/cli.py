"""The ``switchyard`` command."""

from __future__ import annotations

import argparse
from pathlib import Path

SERVICE_NAMES = ("classifier", "ner", "summarizer")


def _serve(args: argparse.Namespace) -> int:
    # Each service imports only its own model code (and torch) in its own process.
    if args.service == "classifier":
        from services.classifier.service import main as classifier_main

        return classifier_main()
    if args.service == "ner":
        from services.ner.service import main as ner_main

        return ner_main()
    from services.summarizer.service import main as summarizer_main

    return summarizer_main()


def _gateway(args: argparse.Namespace) -> int:
    from gateway.server import run_gateway

    return run_gateway()


def _up(args: argparse.Namespace) -> int:
    from switchyard.launcher import up

    names = args.services.split(",") if args.services else None
    return up(names, torch_threads=args.torch_threads)


def _models_prepare(args: argparse.Namespace) -> int:
    from services.prepare import prepare_all
    from services.runtime.torch_setup import configure_torch

    configure_torch(args.torch_threads)
    prepare_all(args.models_dir, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from switchyard.paths import state_dir

    parser = argparse.ArgumentParser(prog="switchyard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one model service in this process")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.set_defaults(run=_serve)

    gateway = commands.add_parser(
        "gateway", help="run the HTTP gateway (settings from SWITCHYARD_GATEWAY_*)"
    )
    gateway.set_defaults(run=_gateway)

    up = commands.add_parser("up", help="start every service and wait for Ctrl-C")
    up.add_argument(
        "--services", help="comma-separated subset of classifier,ner,summarizer,gateway"
    )
    up.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads per model worker; 0 (the default): chosen from the cores",
    )
    up.set_defaults(run=_up)

    from switchyard.keys_cli import add_parser as add_keys_parser

    add_keys_parser(commands)

    from switchyard.rollout_cli import add_parsers as add_rollout_parsers

    add_rollout_parsers(commands)

    models = commands.add_parser("models", help="manage the starter models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    prepare = model_commands.add_parser(
        "prepare", help="build the starter models (idempotent, cached)"
    )
    prepare.add_argument("--models-dir", type=Path, default=state_dir() / "models")
    prepare.add_argument("--force", action="store_true", help="rebuild even if up to date")
    prepare.add_argument("--torch-threads", type=int, default=0, help="0: one per core")
    prepare.set_defaults(run=_models_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))
