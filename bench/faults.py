"""``python -m bench.faults`` (or ``make faults``): faults in the production topology on
this machine, under a bounded closed-loop load through the gateways, counted.

Two classifier replicas and a summarizer behind a real Envoy (the shipped config), a
Redis, two gateways (``bench.fault_system``); the scenarios (``bench.fault_scenarios``):
a replica killed with SIGKILL, a replica stopped with SIGTERM, Redis stopped and started
again, a gateway stopped with summary streams open, and a soak at saturation. Every
figure is a count (calls sent, succeeded, failed by kind), not a speed.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fault_scenarios import gateway_stop_with_streams, redis_outage, replica_fault, soak
from bench.fault_system import FaultSystem
from switchyard.paths import state_dir

SCENARIOS = (
    "replica_sigkill",
    "replica_sigterm",
    "redis_restart",
    "gateway_sigterm_streams",
    "soak",
)


def run(soak_minutes: float, streams: int, only: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="switchyard-faults-") as workdir:
        system = FaultSystem(Path(workdir), state_dir() / "models")
        try:
            system.start()
            results: dict[str, Any] = {"concurrency": 8}
            scenarios: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("replica_sigkill", lambda: replica_fault(system, signal.SIGKILL)),
                ("replica_sigterm", lambda: replica_fault(system, signal.SIGTERM)),
                ("redis_restart", lambda: redis_outage(system)),
                ("gateway_sigterm_streams", lambda: gateway_stop_with_streams(system, streams)),
                ("soak", lambda: soak(system, soak_minutes)),
            ]
            for name, scenario in scenarios:
                if name not in only:
                    continue
                print(f"faults: {name} ...", flush=True)
                results[name] = scenario()
                print(json.dumps(results[name], indent=2), flush=True)
            return results
        finally:
            system.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--soak-minutes", type=float, default=2.0, help="2 by default; 10 for a long soak"
    )
    parser.add_argument(
        "--streams", type=int, default=4, help="summary streams open at the gateway stop"
    )
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run this scenario (repeatable)"
    )
    parser.add_argument("--json", help="write the figures into this file's `faults` section")
    args = parser.parse_args()
    results = run(args.soak_minutes, args.streams, args.only or list(SCENARIOS))
    if args.json:
        path = Path(args.json)
        document = json.loads(path.read_text()) if path.exists() else {}
        # With --only, the other scenarios' figures are kept.
        document["faults"] = document.get("faults", {}) | results
        path.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
