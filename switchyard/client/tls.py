"""TLS for the clients' channels: the CA that signed the services' certificates and,
for services that require client certificates (mTLS), the certificate and key to present.

``ChannelTLS.from_files("ca.pem", "client.pem", "client-key.pem")`` given to a client
(``tls=``) makes its channel a secure one; without it the channel is plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio


def _read(path: str | Path | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None


@dataclass(frozen=True)
class ChannelTLS:
    """PEM bytes: the roots to trust (None: the system's), and the client's own
    certificate chain and private key (both or neither)."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None
    """The name to check the server's certificate against, when the address is not one
    of the names it was issued for (an IP, or a load balancer's name)."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    @classmethod
    def from_files(
        cls,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_name: str | None = None,
    ) -> ChannelTLS:
        return cls(_read(ca_file), _read(cert_file), _read(key_file), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> list[tuple[str, object]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def open_channel(
    target: str, options: Sequence[tuple[str, object]], tls: ChannelTLS | None
) -> grpc.Channel:
    """A blocking channel: secure with ``tls``, else plaintext."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


def open_aio_channel(
    target: str, options: Sequence[tuple[str, object]], tls: ChannelTLS | None
) -> aio.Channel:
    """An asyncio channel: secure with ``tls``, else plaintext."""
    if tls is None:
        return aio.insecure_channel(target, options=options)
    return aio.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])
