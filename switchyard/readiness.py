"""Waiting for a child of the launcher to be ready: a service until its gRPC health says
SERVING, the gateway until its /readyz finds a backend for each service started here.
Each wait gives up when the child dies, when the launcher is asked to stop, or when its
time runs out. A child whose environment gives it TLS settings is asked over TLS (its
health checks present the service's own certificate where it requires one)."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.tls import health_check_tls
from switchyard.client.tls import ChannelTLS, open_channel
from switchyard.service_table import FULL_NAMES, model_service
from switchyard.supervisor import Child

GATEWAY_TLS_CERT = "SWITCHYARD_GATEWAY_TLS_CERT_FILE"


def service_tls(env: Mapping[str, str], full_name: str) -> ChannelTLS | None:
    """How to reach the service ``full_name`` configured by ``env`` (its settings)."""
    (name,) = [n for n, full in FULL_NAMES.items() if full == full_name]
    prefix = model_service(name).env_prefix

    def path(setting: str) -> Path | None:
        value = env.get(f"{prefix}{setting}")
        return Path(value) if value else None

    return health_check_tls(path("TLS_CERT_FILE"), path("TLS_KEY_FILE"), path("TLS_CLIENT_CA_FILE"))


def gateway_base_url(env: Mapping[str, str], port: int) -> tuple[str, ssl.SSLContext | None]:
    """The loopback URL of a gateway configured by ``env``, and for HTTPS a context that
    trusts exactly the certificate it was given (which may name no loopback address)."""
    cert = env.get(GATEWAY_TLS_CERT)
    if not cert:
        return f"http://127.0.0.1:{port}", None
    context = ssl.create_default_context(cafile=cert)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is the anchor
    context.check_hostname = False
    return f"https://127.0.0.1:{port}", context


def wait_serving(child: Child, full_name: str, stop: threading.Event, timeout_s: float) -> bool:
    """Wait until the service's health says SERVING; False if it died, or on stop/timeout."""
    deadline = time.monotonic() + timeout_s
    request = health_pb2.HealthCheckRequest(service=full_name)
    tls = service_tls(child.spec.env, full_name)
    with open_channel(f"127.0.0.1:{child.spec.port}", (), tls) as channel:
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


def _ready_for(child: Child, services: Collection[str]) -> bool:
    """Whether the gateway's /readyz finds a serving backend for each of ``services``
    (a service started elsewhere, or not at all, is not waited for)."""
    url, context = gateway_base_url(child.spec.env, child.spec.port)
    try:
        readyz = f"{url}/readyz"  # http(s) on loopback, never a file: URL
        with urllib.request.urlopen(readyz, timeout=5, context=context) as reply:  # noqa: S310
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
        if _ready_for(child, services):
            return True
        stop.wait(0.25)
    return False
