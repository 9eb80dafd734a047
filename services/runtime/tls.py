"""The gRPC server's transport security, from the service's settings: plaintext by
default, TLS with a certificate and key, and mTLS (client certificates required) with a
client CA as well. Health, reflection and every RPC share the one secure port; the
Prometheus metrics port stays plain HTTP (scrapers rarely hold client certificates)."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.runtime.settings import ServiceSettings
from switchyard.client.tls import ChannelTLS


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """The port's credentials, or None for plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=client_ca.read_bytes() if client_ca is not None else None,
        require_client_auth=client_ca is not None,
    )


def transport(settings: ServiceSettings) -> str:
    """What the port speaks, for the ``listening`` log record."""
    if settings.tls_cert_file is None:
        return "plaintext"
    return "mtls" if settings.tls_client_ca_file is not None else "tls"


def health_check_tls(
    cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None
) -> ChannelTLS | None:
    """How a health check reaches a service whose settings name these files: plaintext
    without a certificate; else trusting the client CA (one CA signs the services and
    their callers in every setup shipped here) or the system's roots, and presenting the
    service's own certificate when the service requires one (mTLS). The certificate must
    allow client authentication then, as the shipped CAs make them."""
    if cert_file is None:
        return None
    if client_ca_file is None:
        return ChannelTLS.from_files(None)
    return ChannelTLS.from_files(client_ca_file, cert_file, key_file)
