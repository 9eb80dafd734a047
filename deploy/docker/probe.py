"""Health probe of a Switchyard container, for Docker HEALTHCHECK and Compose healthchecks.

    python probe.py grpc HOST:PORT SERVICE   exit 0 if the gRPC health service says SERVING
                                             for SERVICE (the proto service's full name)
    python probe.py http URL                 exit 0 if GET URL answers 200
    python probe.py                          the role from PID 1's command line:
                                             `switchyard serve <service>` checks that
                                             service's gRPC health on its configured port,
                                             `switchyard gateway` checks /healthz
                                             (over TLS when the settings give a
                                             certificate: a TLS service is asked with its
                                             own certificate, trusting its client CA)

Any other outcome exits 1 with one line on stderr saying why. The image has no curl and no
grpc_health_probe: this uses grpcio and grpcio-health-checking, already in the image.
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# The service table imports nothing but the standard library: the probe's fast path stays
# free of grpc, pydantic and the services' code.
from switchyard.service_table import FULL_NAMES

if TYPE_CHECKING:
    from switchyard.client.tls import ChannelTLS

TIMEOUT_S = 4.0


def check_grpc(
    target: str, service: str, timeout_s: float = TIMEOUT_S, tls: ChannelTLS | None = None
) -> tuple[bool, str]:
    """Whether ``target`` answers SERVING for ``service``, and what it said."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from switchyard.client.tls import open_channel

    with open_channel(target, (), tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as error:
            return False, f"{target} {service}: {error.code().name}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{target} {service}: {status}"


def check_http(
    url: str, timeout_s: float = TIMEOUT_S, context: ssl.SSLContext | None = None
) -> tuple[bool, str]:
    """Whether GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as reply:  # noqa: S310
            return reply.status == 200, f"{url}: {reply.status}"
    except urllib.error.HTTPError as error:
        return False, f"{url}: {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url}: {error}"


def role_from_command(argv: Sequence[str]) -> tuple[str, str | None]:
    """``("serve", service)`` or ``("gateway", None)`` from a ``switchyard`` command line
    (possibly behind an init such as ``docker-init --``)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "serve" and i + 1 < len(args) and args[i + 1] in FULL_NAMES:
            return "serve", args[i + 1]
        if arg == "gateway":
            return "gateway", None
    raise ValueError(f"not a switchyard serve or gateway command: {' '.join(args)!r}")


def local_address(host: str) -> str:
    """Where to reach a server bound to ``host`` from inside its own container."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def auto_check() -> tuple[bool, str]:
    """Probe whatever this container runs, reading ports from the same settings the
    process reads (its environment)."""
    argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    role, service = role_from_command([a.decode() for a in argv if a])
    if role == "serve":
        from services.runtime.settings import settings_class
        from services.runtime.tls import health_check_tls

        assert service is not None
        settings = settings_class(service)()
        tls = health_check_tls(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        )
        target = f"{local_address(settings.host)}:{settings.port}"
        return check_grpc(target, FULL_NAMES[service], tls=tls)
    from gateway.settings import GatewaySettings

    gateway = GatewaySettings()
    if gateway.tls_cert_file is None:
        return check_http(f"http://{local_address(gateway.host)}:{gateway.port}/healthz")
    # Its own certificate is the anchor: it may name no address of this container.
    context = ssl.create_default_context(cafile=str(gateway.tls_cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    url = f"https://{local_address(gateway.host)}:{gateway.port}/healthz"
    return check_http(url, context=context)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args:
            ok, said = auto_check()
        elif args[0] == "grpc" and len(args) == 3:
            ok, said = check_grpc(args[1], args[2])
        elif args[0] == "http" and len(args) == 2:
            ok, said = check_http(args[1])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as error:  # a probe reports, it never raises
        print(f"probe failed: {error}", file=sys.stderr)
        return 1
    print(said, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
