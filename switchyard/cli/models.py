"""``switchyard models prepare``: build the starter models (fine-tuned, converted and
quantized versions), once; later runs find them up to date."""

from __future__ import annotations

import argparse
from pathlib import Path

from switchyard.paths import state_dir


def prepare(args: argparse.Namespace) -> int:
    from services.prepare import prepare_all
    from services.runtime.torch_setup import configure_torch

    configure_torch(args.torch_threads)
    prepare_all(args.models_dir, force=args.force)
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="manage the starter models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    prepared = model_commands.add_parser(
        "prepare", help="build the starter models (idempotent, cached)"
    )
    prepared.add_argument("--models-dir", type=Path, default=state_dir() / "models")
    prepared.add_argument("--force", action="store_true", help="rebuild even if up to date")
    prepared.add_argument("--torch-threads", type=int, default=0, help="0: one per core")
    prepared.set_defaults(run=prepare)
