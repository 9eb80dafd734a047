"""Waiting for a child of the launcher to be ready: a service until its gRPC health says
SERVING, the gateway until its /readyz finds a backend for each service started here.
Each wait gives up when the child dies, when the launcher is asked to stop, or when its
time runs out."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.supervisor import Child


def wait_serving(child: Child, full_name: str, stop: threading.Event, timeout_s: float) -> bool:
    """Wait until the service's health says SERVING; False if it died, or on stop/timeout."""
    deadline = time.monotonic() + timeout_s
    request = health_pb2.HealthCheckRequest(service=full_name)
    with grpc.insecure_channel(f"127.0.0.1:{child.spec.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and not stop.is_set():
            if child.process.poll() is not None:
                return False
            try:
                reply = stub.Check(request, timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass  # not listening yet
            stop.wait(0.5)
    return False


def _ready_for(port: int, services: Collection[str]) -> bool:
    """Whether the gateway's /readyz finds a serving backend for each of ``services``
    (a service started elsewhere, or not at all, is not waited for)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return bool(reply.status == 200)
    except urllib.error.HTTPError as error:
        if error.code != 503:
            return False
        try:
            answer = json.loads(error.read() or b"{}")
        except ValueError:
            return False
        failing = {str(name).partition("@")[0] for name in answer.get("failing", ())}
        return answer.get("status") == "unavailable" and not failing & set(services)
    except OSError:
        return False  # not listening yet


def wait_gateway_ready(
    child: Child, services: Collection[str], stop: threading.Event, timeout_s: float
) -> bool:
    """Wait until the gateway is ready for ``services``; False if it died, or on
    stop/timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if child.process.poll() is not None:
            return False
        if _ready_for(child.spec.port, services):
            return True
        stop.wait(0.25)
    return False
