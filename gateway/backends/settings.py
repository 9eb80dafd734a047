"""What the backends read of the gateway's settings (``gateway.settings.GatewaySettings``
has all of it): declared here, so that the backends need nothing above them."""

from __future__ import annotations

from typing import Protocol

from switchyard.client.tls import ChannelTLS


class BackendSettings(Protocol):
    @property
    def request_timeout_s(self) -> float: ...

    @property
    def stream_timeout_s(self) -> float: ...

    @property
    def models_refresh_s(self) -> float: ...

    @property
    def health_timeout_s(self) -> float: ...

    @property
    def coalesce_max_in_flight(self) -> int: ...

    @property
    def coalesce_max_texts(self) -> int: ...

    def backend_tls(self) -> ChannelTLS | None:
        """The backend channels' TLS (``gateway.backends.tls``), or None for plaintext."""
        ...

    def backends(self, service: str) -> list[str]:
        """The configured addresses of ``service``."""
        ...
