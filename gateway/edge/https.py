"""HTTPS at the edge: the settings that turn it on (a certificate and its key, given to
uvicorn) and Strict-Transport-Security on every answer while it is on, so that browsers
never fall back to plain HTTP for this host. A gateway that serves plain HTTP sends no
HSTS: the header means nothing there, and would be a lie behind a proxy that does not
terminate TLS."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpsSettings(BaseSettings):
    """The gateway's HTTPS settings (``GatewaySettings`` has them, with its prefix)."""

    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain): with tls_key_file, serve HTTPS only."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    hsts_max_age_s: int = Field(
        31_536_000,
        ge=0,
        description="Strict-Transport-Security max-age sent on every HTTPS answer; 0 tells"
        " browsers to forget it.",
    )

    @model_validator(mode="after")
    def _pair(self) -> HttpsSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set tls_cert_file and tls_key_file together")
        return self

    @property
    def https(self) -> bool:
        return self.tls_cert_file is not None


class StrictTransportSecurity:
    """Adds ``Strict-Transport-Security`` to every response (pure ASGI)."""

    def __init__(self, app: ASGIApp, max_age_s: int) -> None:
        self.app = app
        self.header = (b"strict-transport-security", f"max-age={max_age_s}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)
