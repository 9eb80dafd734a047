"""What the backends read of the gateway's settings (``gateway.settings.GatewaySettings``
has all of it): declared here, so that the backends need nothing above them."""

from __future__ import annotations

from typing import Protocol


class BackendSettings(Protocol):
    @property
    def request_timeout_s(self) -> float: ...

    @property
    def stream_timeout_s(self) -> float: ...

    @property
    def models_refresh_s(self) -> float: ...

    @property
    def health_timeout_s(self) -> float: ...

    def backends(self, service: str) -> list[str]:
        """The configured addresses of ``service``."""
        ...
