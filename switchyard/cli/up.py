"""``switchyard up``: start every model service in its own process, wait until each is
SERVING, start a local Redis and the HTTP gateway in front of them, print where each
listens, and keep them running until Ctrl-C or SIGTERM, which drains and stops them all
(the gateway first).

While the system runs, a child that exits unexpectedly is started again on the same port
(``switchyard.supervisor``), and the rest stay up meanwhile: the gateway answers 503 with
``Retry-After`` for a service that is away. The local Redis keeps an append-only file in
the state folder, so a restarted Redis has every key it had. Each child is tethered to
the launcher (``switchyard.parent_death``): if the launcher dies, even of SIGKILL, they
stop too, and no orphan keeps a port.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import BinaryIO

from switchyard.cli.dev_keys import bootstrap_keys, seed_keys_file
from switchyard.launch_tls import gateway_ca_file, local_certificates, tls_environment
from switchyard.local_children import (
    GATEWAY,
    REDIS,
    ServiceChild,
    gateway_spec,
    redis_spec,
    service_children,
)
from switchyard.logs import configure_logging
from switchyard.paths import state_dir
from switchyard.readiness import gateway_base_url, wait_gateway_ready, wait_serving
from switchyard.redis_server import wait_answering
from switchyard.replicas import ENVOY, Topology, gateway_backends, start_envoy
from switchyard.run_state import clear_run_state, write_run_state
from switchyard.service_table import SERVICE_NAMES, SERVICES
from switchyard.supervisor import ChildSpec, Supervisor

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 600.0
REDIS_STARTUP_TIMEOUT_S = 30.0
TICK_S = 0.2
"""How often the supervisor looks at the children (an exit is noticed within this)."""


@dataclass
class LocalSystem:
    """What was started, for the banner and the run-state file."""

    services: list[ServiceChild] = field(default_factory=list)
    gateway: ChildSpec | None = None
    redis_url: str | None = None
    dev_keys: dict[str, str] = field(default_factory=dict)
    envoy_admin_port: int | None = None


def start_system(
    supervisor: Supervisor,
    stop: threading.Event,
    names: list[str] | None,
    torch_threads: int,
    topology: Topology | None = None,
) -> LocalSystem | None:
    """Start the chosen services (and Envoy in front of them if asked), then Redis and
    the gateway, each waited on; None if one did not come up (or on stop)."""
    topology = topology or Topology()
    system = LocalSystem()
    for launch in SERVICES:
        if names is None or launch.name in names:
            for child in service_children(launch, torch_threads, topology):
                system.services.append(child)
                supervisor.start(child.spec)
    for s in system.services:
        if not wait_serving(
            supervisor.child(s.spec.name), s.launch.full_name, stop, STARTUP_TIMEOUT_S
        ):
            if not stop.is_set():
                log.error("%s did not become SERVING; stopping", s.spec.name)
            return None
    addresses = None
    if topology.replicas or topology.envoy:
        replicas: dict[str, list[int]] = {}
        for s in system.services:
            replicas.setdefault(s.launch.name, []).append(s.spec.port)
        ports = None
        if topology.envoy:
            ports = start_envoy(supervisor, replicas, stop, STARTUP_TIMEOUT_S)
            if ports is None:
                return None
            system.envoy_admin_port = ports.admin
        addresses = gateway_backends(replicas, ports)
    if names is not None and GATEWAY not in names:
        return system
    system.redis_url = os.environ.get("REDIS_URL") or None
    seed_file = None
    if system.redis_url is None:
        spec = redis_spec()
        if spec is not None:
            if not wait_answering(
                spec.port, supervisor.start(spec).process, REDIS_STARTUP_TIMEOUT_S
            ):
                log.error("redis-server did not start on port %d; stopping", spec.port)
                return None
            system.redis_url = f"redis://127.0.0.1:{spec.port}/0"
    if system.redis_url is not None:
        own_redis = REDIS in supervisor.names()
        system.dev_keys = bootstrap_keys(system.redis_url, revoke_earlier=own_redis)
    else:
        system.dev_keys, seed_file = seed_keys_file()
    system.gateway = gateway_spec(system.services, system.redis_url, seed_file, addresses)
    gateway = supervisor.start(system.gateway)
    launched = [s.launch.name for s in system.services]
    if not wait_gateway_ready(gateway, launched, stop, STARTUP_TIMEOUT_S):
        if not stop.is_set():
            log.error("the gateway did not become ready; stopping")
        return None
    return system


def print_banner(system: LocalSystem) -> None:
    print("Switchyard is up:")
    for s in system.services:
        print(
            f"  {s.spec.name:<11} gRPC 127.0.0.1:{s.spec.port} ({s.launch.full_name})"
            f"  metrics http://127.0.0.1:{s.metrics_port}/metrics"
        )
    if system.envoy_admin_port is not None:
        print(f"  {ENVOY:<11} admin http://127.0.0.1:{system.envoy_admin_port}/clusters")
    if system.gateway is not None:
        gateway_url, _ = gateway_base_url(system.gateway.env, system.gateway.port)
        print(f"  {GATEWAY:<11} {gateway_url}/  (REST, SSE, the page; API docs at /docs)")
        if system.redis_url is not None:
            print(f"  {REDIS:<11} {system.redis_url}")
        for role, key in system.dev_keys.items():
            print(f"  {role} key (development):")
            print(key)
        state_file = write_run_state(
            {
                "redis_url": system.redis_url,
                "gateway_url": gateway_url,
                "tls_ca_file": gateway_ca_file(system.gateway.env),
                **{f"{role}_key": key for role, key in system.dev_keys.items()},
            }
        )
        print(f"  (also in {state_file}, readable by you only)")
    print("Press Ctrl-C to stop.", flush=True)


def drain(supervisor: Supervisor) -> int:
    """The gateway first (its calls in flight finish against live services and Redis),
    then the rest; returns the worst exit code."""
    worst = supervisor.stop([GATEWAY])
    return supervisor.stop(supervisor.names()) or worst


def claim_state_folder() -> BinaryIO | None:
    """The state folder for this launcher alone while the returned file stays open (the
    kernel lets go when the launcher ends, however it ends); None if another launcher has
    it. Two would append to one Redis file and overwrite each other's run-state."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    claim = (folder / "launcher.lock").open("ab")
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.close()
        return None
    return claim


def up(
    names: list[str] | None = None,
    torch_threads: int = 0,
    topology: Topology | None = None,
    tls: bool = False,
) -> int:
    """Run the local system until interrupted; returns the exit code."""
    configure_logging("launcher")
    claim = claim_state_folder()
    if claim is None:
        log.error("another switchyard up runs with the state folder %s", state_dir())
        return 1
    with claim:
        if tls:
            # Every child starts from this environment: TLS and mTLS for all of them.
            os.environ.update(tls_environment(local_certificates(state_dir() / "tls")))
        return run(names, torch_threads, topology)


def run(names: list[str] | None, torch_threads: int, topology: Topology | None = None) -> int:
    """Start the system, keep it up until Ctrl-C or SIGTERM, then drain it."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Children are started and restarted from this thread only (see switchyard.supervisor).
    supervisor = Supervisor()
    try:
        system = start_system(supervisor, stop, names, torch_threads, topology)
        if system is None:
            code = drain(supervisor)
            return code if stop.is_set() else 1
        print_banner(system)
        log.info("up", extra={"pids": supervisor.pids(), "ports": supervisor.ports()})
        while not stop.wait(TICK_S):
            supervisor.tend()
        print("stopping: draining the gateway, then every service ...", flush=True)
        return drain(supervisor)
    except BaseException:
        drain(supervisor)
        raise
    finally:
        clear_run_state()


def command(args: argparse.Namespace) -> int:
    names = args.services.split(",") if args.services else None
    if args.tls and args.envoy:
        # The shipped Envoy configuration speaks plaintext to the services, which refuse
        # it under --tls.
        print("switchyard up: --envoy does not combine with --tls", file=sys.stderr)
        return 2
    try:
        topology = Topology.parse(args.replicas or "", args.envoy, names)
    except ValueError as error:
        print(f"switchyard up: {error}", file=sys.stderr)
        return 2
    return up(names, torch_threads=args.torch_threads, topology=topology, tls=args.tls)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("up", help="start every service and wait for Ctrl-C")
    parser.add_argument(
        "--services",
        help=f"comma-separated subset of {','.join((*SERVICE_NAMES, GATEWAY))}",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads per model worker; 0 (the default): chosen from the cores",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="TLS everywhere: certificates from a local CA in the state folder's tls/, mTLS"
        " between the gateway and the services, the gateway on https",
    )
    parser.add_argument(
        "--replicas",
        help="replicas per service, e.g. classifier=2 (each its own process on free ports)",
    )
    parser.add_argument(
        "--envoy",
        action="store_true",
        help="put Envoy (deploy/envoy/envoy.yaml, rendered for local ports) in front of the"
        " services: it balances, retries and health-checks their replicas",
    )
    parser.set_defaults(run=command)
