"""The gateway's calls to the model services over TLS: the CA that signed the services'
certificates and, for services that require client certificates (mTLS), the gateway's
own certificate and key. Without a CA the channels are plaintext."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from switchyard.client.tls import ChannelTLS


class BackendTlsSettings(BaseSettings):
    """The backend TLS settings (``GatewaySettings`` has them, with its prefix)."""

    backend_tls_ca_file: Path | None = Field(
        None,
        description="PEM CA certificates the model services' certificates must chain to:"
        " set, every backend channel is TLS.",
    )
    backend_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate the gateway presents to the services (mTLS)."
    )
    backend_tls_key_file: Path | None = Field(
        None, description="PEM private key of backend_tls_cert_file."
    )
    backend_tls_server_name: str | None = Field(
        None,
        description="Check the services' certificates against this name instead of the"
        " backend address's host.",
    )

    @model_validator(mode="after")
    def _complete(self) -> BackendTlsSettings:
        if (self.backend_tls_cert_file is None) != (self.backend_tls_key_file is None):
            raise ValueError("set backend_tls_cert_file and backend_tls_key_file together")
        if self.backend_tls_cert_file is not None and self.backend_tls_ca_file is None:
            raise ValueError("a backend client certificate needs backend_tls_ca_file")
        return self

    def backend_tls(self) -> ChannelTLS | None:
        """The channels' TLS, read from the files now (a renewed certificate is used by
        the channels opened after it), or None for plaintext."""
        if self.backend_tls_ca_file is None:
            return None
        return ChannelTLS.from_files(
            self.backend_tls_ca_file,
            self.backend_tls_cert_file,
            self.backend_tls_key_file,
            self.backend_tls_server_name,
        )
