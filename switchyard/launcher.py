"""``switchyard up``: start every model service in its own process, wait until each is
SERVING, print where each listens, and on Ctrl-C or SIGTERM drain and stop them all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


@dataclass
class Running:
    launch: ServiceLaunch
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int


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


def stop_all(running: list[Running]) -> int:
    """SIGTERM every service (each drains), wait, kill what is left; returns worst exit."""
    for r in running:
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGTERM)
    worst = 0
    for r in running:
        try:
            code = r.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.process.pid, signal.SIGKILL)
            code = r.process.wait()
        worst = worst or code
    return worst


def up(names: list[str] | None = None, torch_threads: int = 1) -> int:
    """Run the local system until interrupted; returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    chosen = [s for s in SERVICES if names is None or s.name in names]
    running: list[Running] = []
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
        print("Switchyard is up:")
        for r in running:
            print(
                f"  {r.launch.name:<11} gRPC 127.0.0.1:{r.port} ({r.launch.full_name})"
                f"  metrics http://127.0.0.1:{r.metrics_port}/metrics"
            )
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            dead = [r for r in running if r.process.poll() is not None]
            if dead:
                for r in dead:
                    print(f"{r.launch.name} exited with {r.process.returncode}", file=sys.stderr)
                stop_all(running)
                return 1
        print("stopping: draining every service ...", flush=True)
        return stop_all(running)
    except BaseException:
        stop_all(running)
        raise
