"""``switchyard up``: start every model service in its own process, wait until each is
SERVING, start the HTTP gateway in front of them, print where each listens, and on
Ctrl-C or SIGTERM drain and stop them all (the gateway first)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc
import redis.asyncio as redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.keys import KeyStore, key_hash, new_key
from switchyard.paths import state_dir
from switchyard.redis_server import LocalRedis, redis_server_path
from switchyard.run_state import clear_run_state, write_private_json, write_run_state

STARTUP_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServiceLaunch:
    name: str
    full_name: str
    env_prefix: str
    default_port: int
    default_metrics_port: int


SERVICES = (
    ServiceLaunch(
        "classifier",
        "switchyard.classifier.v1.ClassifierService",
        "SWITCHYARD_CLASSIFIER_",
        50051,
        9051,
    ),
    ServiceLaunch("ner", "switchyard.ner.v1.NerService", "SWITCHYARD_NER_", 50052, 9052),
    ServiceLaunch(
        "summarizer",
        "switchyard.summarizer.v1.SummarizerService",
        "SWITCHYARD_SUMMARIZER_",
        50053,
        9053,
    ),
)


GATEWAY = "gateway"
GATEWAY_DEFAULT_PORT = 8000


@dataclass
class Running:
    launch: ServiceLaunch
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int


@dataclass
class RunningGateway:
    process: subprocess.Popen[bytes]
    port: int


def start(launch: ServiceLaunch, torch_threads: int) -> Running:
    env = dict(os.environ)
    # Several model processes share this machine's cores: one torch thread each unless set.
    env.setdefault(f"{launch.env_prefix}TORCH_THREADS", str(torch_threads))
    env.setdefault(f"{launch.env_prefix}PORT", str(launch.default_port))
    env.setdefault(f"{launch.env_prefix}METRICS_PORT", str(launch.default_metrics_port))
    # A new interpreter (fork and exec), never a fork of this one: no torch or grpc state
    # is inherited.
    # Its own process group, so that a stuck service is killed with its model workers.
    process = subprocess.Popen(
        [sys.executable, "-m", "switchyard", "serve", launch.name],
        env=env,
        start_new_session=True,
    )
    return Running(
        launch,
        process,
        int(env[f"{launch.env_prefix}PORT"]),
        int(env[f"{launch.env_prefix}METRICS_PORT"]),
    )


def wait_serving(running: Running, stop: threading.Event, timeout_s: float) -> bool:
    """Wait until the service's health says SERVING; False if it died, or on stop/timeout."""
    deadline = time.monotonic() + timeout_s
    request = health_pb2.HealthCheckRequest(service=running.launch.full_name)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and not stop.is_set():
            if running.process.poll() is not None:
                return False
            try:
                reply = stub.Check(request, timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass  # not listening yet
            stop.wait(0.5)
    return False


def start_gateway(
    services: list[Running], redis_url: str | None, seed_keys: Path | None = None
) -> RunningGateway:
    """The gateway, pointed at the services started here (unless the environment says)."""
    env = dict(os.environ)
    if redis_url is not None:
        env.setdefault("REDIS_URL", redis_url)
    if seed_keys is not None:
        env["SWITCHYARD_GATEWAY_SEED_KEYS_FILE"] = str(seed_keys)
    env.setdefault("SWITCHYARD_GATEWAY_PORT", str(GATEWAY_DEFAULT_PORT))
    for r in services:
        env.setdefault(
            f"SWITCHYARD_GATEWAY_{r.launch.name.upper()}_BACKENDS", f"127.0.0.1:{r.port}"
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "switchyard", "gateway"], env=env, start_new_session=True
    )
    return RunningGateway(process, int(env["SWITCHYARD_GATEWAY_PORT"]))


def wait_gateway_ready(gateway: RunningGateway, stop: threading.Event, timeout_s: float) -> bool:
    """Wait until the gateway's /readyz answers 200; False if it died, or on stop/timeout."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{gateway.port}/readyz"
    while time.monotonic() < deadline and not stop.is_set():
        if gateway.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or a backend not seen yet
        stop.wait(0.25)
    return False


def start_local_redis() -> LocalRedis | None:
    """A redis-server of the local system's own, or None (with a loud warning) when the
    machine has none."""
    if redis_server_path() is None:
        print(
            "WARNING: no redis-server on this machine and no REDIS_URL: the gateway keeps"
            " keys, rate limits and its cache in its own process, so limits are per process"
            " (Debian: apt-get install redis-server)",
            file=sys.stderr,
        )
        return None
    return LocalRedis(state_dir() / "redis")


def bootstrap_keys(redis_url: str) -> dict[str, str]:
    """A development admin key and client key, made at start for the local system."""

    async def make() -> dict[str, str]:
        client = redis.Redis.from_url(redis_url)
        try:
            store = KeyStore(client)
            _, admin = await store.create("local-admin", "admin", "enterprise")
            _, client_key = await store.create("local-client", "client", "pro")
            return {"admin": admin, "client": client_key}
        finally:
            await client.aclose()

    return asyncio.run(make())


def seed_keys_file() -> tuple[dict[str, str], Path]:
    """Development keys for a gateway without Redis: their hashes go to a file (owner-only)
    that its in-process key store starts from."""
    keys: dict[str, str] = {}
    entries = []
    for role, tier in (("admin", "enterprise"), ("client", "pro")):
        key_id, key = new_key()
        keys[role] = key
        entries.append(
            {
                "id": key_id,
                "owner": f"local-{role}",
                "role": role,
                "tier": tier,
                "hash": key_hash(key),
            }
        )
    return keys, write_private_json(state_dir() / "seed-keys.json", entries)


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> int:
    """SIGTERM each process (each drains), wait, kill what is left; returns worst exit."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    worst = 0
    for process in processes:
        try:
            code = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        worst = worst or code
    return worst


def stop_all(running: list[Running], gateway: RunningGateway | None = None) -> int:
    """The gateway first (its calls in flight finish against live services), then the
    services."""
    worst = stop_processes([gateway.process]) if gateway is not None else 0
    return stop_processes([r.process for r in running]) or worst


def up(names: list[str] | None = None, torch_threads: int = 1) -> int:
    """Run the local system until interrupted; returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    chosen = [s for s in SERVICES if names is None or s.name in names]
    running: list[Running] = []
    gateway: RunningGateway | None = None
    local: LocalRedis | None = None
    try:
        for launch in chosen:
            running.append(start(launch, torch_threads))
        for r in running:
            if not wait_serving(r, stop, STARTUP_TIMEOUT_S):
                if not stop.is_set():
                    print(f"{r.launch.name} did not become SERVING; stopping", file=sys.stderr)
                    stop_all(running)
                    return 1
                return stop_all(running)
        if names is None or GATEWAY in names:
            redis_url = os.environ.get("REDIS_URL")
            if redis_url is None:
                local = start_local_redis()
                redis_url = local.url if local is not None else None
            if redis_url is not None:
                dev_keys = bootstrap_keys(redis_url)
                gateway = start_gateway(running, redis_url)
            else:
                dev_keys, seed_file = seed_keys_file()
                gateway = start_gateway(running, None, seed_file)
            if not wait_gateway_ready(gateway, stop, STARTUP_TIMEOUT_S):
                if not stop.is_set():
                    print("the gateway did not become ready; stopping", file=sys.stderr)
                    stop_all(running, gateway)
                    return 1
                return stop_all(running, gateway)
        print("Switchyard is up:")
        for r in running:
            print(
                f"  {r.launch.name:<11} gRPC 127.0.0.1:{r.port} ({r.launch.full_name})"
                f"  metrics http://127.0.0.1:{r.metrics_port}/metrics"
            )
        if gateway is not None:
            print(
                f"  {GATEWAY:<11} http://127.0.0.1:{gateway.port}/  (REST, SSE, the page;"
                " API docs at /docs)"
            )
            if redis_url is not None:
                print(f"  {'redis':<11} {redis_url}")
            for role, key in dev_keys.items():
                print(f"  {role} key (development):")
                print(key)
            state_file = write_run_state(
                {
                    "redis_url": redis_url,
                    "gateway_url": f"http://127.0.0.1:{gateway.port}",
                    **{f"{role}_key": key for role, key in dev_keys.items()},
                }
            )
            print(f"  (also in {state_file}, readable by you only)")
        print("Press Ctrl-C to stop.", flush=True)
        processes = [r.process for r in running] + ([gateway.process] if gateway else [])
        while not stop.wait(1.0):
            if any(p.poll() is not None for p in processes):
                for r in running:
                    if r.process.poll() is not None:
                        print(
                            f"{r.launch.name} exited with {r.process.returncode}", file=sys.stderr
                        )
                if gateway is not None and gateway.process.poll() is not None:
                    print(f"the gateway exited with {gateway.process.returncode}", file=sys.stderr)
                stop_all(running, gateway)
                return 1
        print("stopping: draining the gateway, then every service ...", flush=True)
        return stop_all(running, gateway)
    except BaseException:
        stop_all(running, gateway)
        raise
    finally:
        if local is not None:
            local.stop()
        clear_run_state()
