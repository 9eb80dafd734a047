"""``python -m bench`` (or ``make bench``): run the benchmarks and print their figures.

The load generator runs in this process and shares the machine's cores with the service
under test; every ratio compares two figures measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from services.runtime.torch_setup import configure_torch
from switchyard.paths import state_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    parser.add_argument(
        "--only",
        choices=(
            "classifier",
            "summarizer",
            "gateway",
            "streaming",
            "jobs",
            "bulk",
            "memory",
            "tracing",
        ),
    )
    parser.add_argument(
        "--json",
        help="also write the figures to this file (with --only, update that one section)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads of the model under test (0, as shipped: chosen from the cores)",
    )
    args = parser.parse_args()
    models_dir = state_dir() / "models"
    # The model under test gets the same torch threads in this process and in the service.
    threads = args.torch_threads
    configure_torch(threads)
    results: dict[str, object] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "torch_threads": threads,
    }
    if args.only in (None, "classifier"):
        from bench import classifier

        results["classifier"] = classifier.run(models_dir, args.quick, threads)
    if args.only in (None, "summarizer"):
        from bench import summarizer

        results["summarizer"] = summarizer.run(models_dir, args.quick, threads)
    if args.only in (None, "gateway"):
        from bench import gateway

        results["gateway"] = gateway.run(models_dir, args.quick, threads)
    if args.only in (None, "streaming"):
        from bench import streaming

        results["streaming"] = streaming.run(args.quick, threads)
    if args.only in (None, "jobs"):
        from bench import jobs

        results["jobs"] = jobs.run(models_dir, args.quick, threads)
    if args.only in (None, "bulk"):
        from bench import bulk

        results["bulk"] = bulk.run(models_dir, args.quick, threads)
    if args.only in (None, "memory"):
        from bench import memory

        results["memory"] = memory.run(models_dir)
    if args.only in (None, "tracing"):
        from bench import tracing_cost

        results["tracing"] = tracing_cost.run(args.quick)
    print(json.dumps(results, indent=2))
    if args.json:
        written = results
        if args.only and os.path.exists(args.json):
            with open(args.json) as f:
                written = {**json.load(f), **results}
        with open(args.json, "w") as f:
            json.dump(written, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
