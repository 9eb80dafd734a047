"""The production topology on this machine, for ``make faults``: two classifier replicas
and a summarizer behind a local Envoy (the shipped config rendered for their ports), a
Redis of its own (append-only, so a restart keeps the keys), and two gateways in front of
Envoy: ``gateway-1`` fails open when Redis is away, ``gateway-2`` fails closed.

Everything runs under one ``switchyard.supervisor.Supervisor``, as ``switchyard up`` runs
it: a child that exits is started again on its port. The supervisor is tended from the
thread that built the system (the load runs in threads of its own), in every wait here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as redis

from gateway.access.keys import KeyStore
from switchyard.envoy import EnvoyPorts, HostState, hosts
from switchyard.processes import free_port
from switchyard.readiness import wait_gateway_ready, wait_serving
from switchyard.redis_server import redis_server_command, redis_server_path, wait_answering
from switchyard.replicas import replica_spec, start_envoy
from switchyard.service_table import FULL_NAMES, model_service
from switchyard.supervisor import ChildSpec, Supervisor

STARTUP_S = 600.0
CLASSIFIERS = ("classifier-1", "classifier-2")
GATEWAYS = ("gateway-1", "gateway-2")
REDIS = "redis"


class FaultSystem:
    def __init__(self, workdir: Path, models_dir: Path) -> None:
        self.workdir = workdir
        self.models_dir = models_dir
        self.supervisor = Supervisor()
        self.never = threading.Event()
        self.envoy: EnvoyPorts | None = None
        self.redis_spec: ChildSpec | None = None
        self.key = ""

    # --- start -----------------------------------------------------------------------

    def start(self) -> None:
        replicas: dict[str, list[int]] = {}
        for service, count in (("classifier", 2), ("summarizer", 1)):
            for index in range(1, count + 1):
                spec, _ = replica_spec(service, index, torch_threads=1)
                spec.env[f"{model_service(service).env_prefix}MODELS_DIR"] = str(self.models_dir)
                spec.env[f"{model_service(service).env_prefix}HOST"] = "127.0.0.1"
                self.supervisor.start(spec)
                replicas.setdefault(service, []).append(spec.port)
        for name in self.supervisor.names():
            service = name.rpartition("-")[0]
            child = self.supervisor.child(name)
            if not wait_serving(child, FULL_NAMES[service], self.never, STARTUP_S):
                raise RuntimeError(f"{name} did not become SERVING")
        self.envoy = start_envoy(
            self.supervisor, replicas, self.never, STARTUP_S, self.workdir / "envoy.json"
        )
        if self.envoy is None:
            raise RuntimeError("envoy did not start")
        self.start_redis()
        self.key = self._make_key()
        for name, failure in zip(GATEWAYS, ("open", "closed"), strict=True):
            child = self.supervisor.start(self._gateway_spec(name, failure))
            if not wait_gateway_ready(child, ["classifier", "summarizer"], self.never, STARTUP_S):
                raise RuntimeError(f"{name} did not become ready")

    def start_redis(self) -> None:
        if self.redis_spec is None:
            executable = redis_server_path()
            if executable is None:
                raise RuntimeError("make faults needs redis-server (apt-get install redis-server)")
            workdir = self.workdir / "redis"
            workdir.mkdir(parents=True, exist_ok=True)
            port = free_port()
            command = redis_server_command(executable, port, workdir, persistent=True)
            self.redis_spec = ChildSpec(REDIS, command, dict(os.environ), port, True)
        child = self.supervisor.start(self.redis_spec)
        if not wait_answering(self.redis_spec.port, child.process, 30.0):
            raise RuntimeError("redis-server did not start")

    def stop_redis(self) -> None:
        self.supervisor.stop([REDIS])

    @property
    def redis_url(self) -> str:
        assert self.redis_spec is not None
        return f"redis://127.0.0.1:{self.redis_spec.port}/0"

    def _make_key(self) -> str:
        async def create() -> str:
            client = redis.Redis.from_url(self.redis_url)
            try:
                # Limits far above what the load sends: a refusal here is a fault.
                limits: dict[str, int | None] = {"per_minute": 10_000_000, "per_day": None}
                _, key = await KeyStore(client).create("faults", "client", "enterprise", limits)
                return key
            finally:
                await client.aclose()

        return asyncio.run(create())

    def _gateway_spec(self, name: str, failure: str) -> ChildSpec:
        assert self.envoy is not None
        port = free_port()
        env = dict(os.environ) | {
            "SWITCHYARD_GATEWAY_HOST": "127.0.0.1",
            "SWITCHYARD_GATEWAY_PORT": str(port),
            **{
                model_service(s).gateway_backends_env: f"127.0.0.1:{port}"
                for s, port in self.envoy.listeners.items()
            },
            "SWITCHYARD_GATEWAY_NER_BACKENDS": "",
            "SWITCHYARD_GATEWAY_RATE_LIMIT_FAILURE": failure,
            "SWITCHYARD_GATEWAY_CACHE_TTL_S": "0",  # every call reaches a replica
            "SWITCHYARD_GATEWAY_TOKEN_SIGNING_KEY": "faults-signing-key-shared-by-both-gateways",
            "REDIS_URL": self.redis_url,
        }
        command = [sys.executable, "-m", "switchyard", "gateway"]
        # Its log goes to this process's stderr: an unexpected answer can be looked up.
        return ChildSpec(name, command, env, port)

    # --- looking and waiting ---------------------------------------------------------

    def url(self, gateway: str) -> str:
        return f"http://127.0.0.1:{self.supervisor.child(gateway).spec.port}"

    def pid(self, name: str) -> int:
        return self.supervisor.child(name).pid

    def restarts(self, name: str) -> int:
        return self.supervisor.child(name).restarts

    def signal(self, name: str, signum: signal.Signals) -> None:
        """Signal a child's process group (the child and its model workers)."""
        os.killpg(self.pid(name), signum)

    def classifier_hosts(self) -> dict[str, HostState]:
        assert self.envoy is not None
        return hosts(self.envoy.admin, "classifier")

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.supervisor.child(name).spec.port}"

    def tend_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Tend the supervisor until ``condition`` holds; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.supervisor.tend()
            if condition():
                return True
            time.sleep(0.1)
        return False

    def tend_for(self, seconds: float) -> None:
        self.tend_until(lambda: False, seconds)

    def running(self, name: str) -> bool:
        child = self.supervisor.child(name)
        return child.restart_at is None and child.process.poll() is None

    def stop(self) -> None:
        self.supervisor.stop(list(GATEWAYS))
        self.supervisor.stop(self.supervisor.names())
