"""What each child of ``switchyard up`` runs: the command, the environment and the port of
every model service (or each replica), the gateway and the local Redis."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from switchyard.paths import state_dir
from switchyard.processes import free_port
from switchyard.redis_server import redis_server_command, redis_server_path
from switchyard.replicas import Topology, replica_spec
from switchyard.service_table import SERVICES, ModelService
from switchyard.supervisor import ChildSpec

log = logging.getLogger(__name__)

GATEWAY = "gateway"
GATEWAY_DEFAULT_PORT = 8000
REDIS = "redis"


@dataclass(frozen=True)
class ServiceChild:
    launch: ModelService
    spec: ChildSpec
    metrics_port: int


def _port(env: dict[str, str], variable: str, default: int) -> int:
    """The port ``variable`` names, else ``default``. Port 0 becomes a free port chosen
    here and written back: the gateway must be told where a service listens, and every
    restart must ask for the same port."""
    port = int(env.get(variable) or default)
    if port == 0:
        port = free_port()
    env[variable] = str(port)
    return port


def service_child(launch: ModelService, torch_threads: int) -> ServiceChild:
    # The launcher's whole environment, OTEL_* included: every process it starts exports
    # its traces where that environment says (switchyard.telemetry).
    env = dict(os.environ)
    # Several model processes share this machine's cores: the command line says how many
    # torch threads each may use, unless the environment does.
    env.setdefault(f"{launch.env_prefix}TORCH_THREADS", str(torch_threads))
    port = _port(env, f"{launch.env_prefix}PORT", launch.default_port)
    metrics_port = _port(env, f"{launch.env_prefix}METRICS_PORT", launch.default_metrics_port)
    # A new interpreter (fork and exec), never a fork of this one: no torch or grpc state
    # is inherited.
    command = [sys.executable, "-m", "switchyard", "serve", launch.name]
    return ServiceChild(launch, ChildSpec(launch.name, command, env, port), metrics_port)


def service_children(
    launch: ModelService, torch_threads: int, topology: Topology
) -> list[ServiceChild]:
    """The service's one process on its usual port, or its replicas on free ports."""
    count = topology.replicas.get(launch.name, 1)
    if count == 1 and not topology.envoy:
        return [service_child(launch, torch_threads)]
    return [
        ServiceChild(launch, *replica_spec(launch.name, index, torch_threads))
        for index in range(1, count + 1)
    ]


def gateway_spec(
    services: list[ServiceChild],
    redis_url: str | None,
    seed_keys: Path | None,
    addresses: dict[str, str] | None = None,
) -> ChildSpec:
    """The gateway, pointed at the services started here and at no other (unless the
    environment says otherwise)."""
    env = dict(os.environ)  # OTEL_* included, as for the services
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if seed_keys is not None:
        env["SWITCHYARD_GATEWAY_SEED_KEYS_FILE"] = str(seed_keys)
    # The local system's one gateway signs its access tokens with a secret of this run's
    # (tokens of an earlier run stop working); replicas elsewhere share one as a setting.
    env.setdefault("SWITCHYARD_GATEWAY_TOKEN_SIGNING_KEY", secrets.token_urlsafe(32))
    port = _port(env, "SWITCHYARD_GATEWAY_PORT", GATEWAY_DEFAULT_PORT)
    started = addresses or {s.launch.name: f"127.0.0.1:{s.spec.port}" for s in services}
    for launch in SERVICES:
        # A service not started here gets no address (its default port would be another
        # system's, or nobody's): the gateway then does not serve it, and its readiness
        # does not wait for it.
        env.setdefault(launch.gateway_backends_env, started.get(launch.name, ""))
    return ChildSpec(GATEWAY, [sys.executable, "-m", "switchyard", "gateway"], env, port)


def redis_spec() -> ChildSpec | None:
    """A redis-server of the local system's own, persisting to the state folder, or None
    (with a loud warning) when the machine has none."""
    executable = redis_server_path()
    if executable is None:
        log.warning(
            "no redis-server on this machine and no REDIS_URL: the gateway keeps keys, rate"
            " limits and its cache in its own process, so limits are per process"
            " (Debian: apt-get install redis-server)"
        )
        return None
    workdir = state_dir() / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = redis_server_command(executable, port, workdir, persistent=True)
    return ChildSpec(REDIS, command, dict(os.environ), port, discard_output=True)
