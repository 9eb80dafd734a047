"""``switchyard up --tls``: the local CA's certificates (``switchyard.local_ca``) handed to
every child as settings: each model service serves TLS and requires a client certificate
from the CA (mTLS), and the gateway serves HTTPS and calls the services with its own
client certificate."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from switchyard.local_ca import (
    GATEWAY_CLIENT,
    LocalCertificates,
    ensure_local_certificates,
    signed_by,
)
from switchyard.service_table import SERVICE_NAMES, SERVICES

GATEWAY = "gateway"


def local_certificates(folder: Path) -> LocalCertificates:
    return ensure_local_certificates(folder, [*SERVICE_NAMES, GATEWAY])


def tls_environment(certs: LocalCertificates) -> dict[str, str]:
    """The settings that put every part of the local system on ``certs``."""
    env: dict[str, str] = {}
    for launch in SERVICES:
        own = certs.servers[launch.name]
        env[f"{launch.env_prefix}TLS_CERT_FILE"] = str(own.cert)
        env[f"{launch.env_prefix}TLS_KEY_FILE"] = str(own.key)
        env[f"{launch.env_prefix}TLS_CLIENT_CA_FILE"] = str(certs.ca.cert)
    gateway, client = certs.servers[GATEWAY], certs.clients[GATEWAY_CLIENT]
    env["SWITCHYARD_GATEWAY_TLS_CERT_FILE"] = str(gateway.cert)
    env["SWITCHYARD_GATEWAY_TLS_KEY_FILE"] = str(gateway.key)
    env["SWITCHYARD_GATEWAY_BACKEND_TLS_CA_FILE"] = str(certs.ca.cert)
    env["SWITCHYARD_GATEWAY_BACKEND_TLS_CERT_FILE"] = str(client.cert)
    env["SWITCHYARD_GATEWAY_BACKEND_TLS_KEY_FILE"] = str(client.key)
    return env


def gateway_ca_file(gateway_env: dict[str, str]) -> str | None:
    """The CA file beside the gateway's HTTPS certificate if that CA issued it (the local
    CA's layout), for the run-state file: the CLI commands then trust the local gateway."""
    cert = gateway_env.get("SWITCHYARD_GATEWAY_TLS_CERT_FILE")
    if not cert:
        return None
    ca = Path(cert).parent / "ca.pem"
    try:
        issued = signed_by(
            x509.load_pem_x509_certificate(Path(cert).read_bytes()),
            x509.load_pem_x509_certificate(ca.read_bytes()),
        )
    except (OSError, ValueError):
        return None
    return str(ca) if issued else None


if __name__ == "__main__":
    # ``python -m switchyard.launch_tls FOLDER``: the certificates alone (Compose's
    # tls-certs), made or kept as ``switchyard up --tls`` would.
    import sys

    made = local_certificates(Path(sys.argv[1]))
    print(f"certificates of the local CA in {made.folder}")
