"""Run the gateway under uvicorn, with a drain on SIGTERM before uvicorn stops."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from types import FrameType

import uvicorn

from gateway.app import create_app
from gateway.edge.drain import Drain
from gateway.settings import GatewaySettings
from switchyard import telemetry
from switchyard.logs import configure_logging

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM or Ctrl-C drains before the server stops
    (uvicorn alone would close the listener and cut open streams at once)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace_s = grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        log.info("draining", extra={"in_flight": self.drain.in_flight})
        self.drain.begin()
        if not await self.drain.wait_idle(self.grace_s):
            log.warning("drain grace ran out", extra={"in_flight": self.drain.in_flight})
        log.info("drained")
        self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_gateway(settings: GatewaySettings | None = None) -> int:
    settings = settings or GatewaySettings()
    configure_logging("gateway", settings.log_level)
    setup_tracing()
    drain = Drain()
    config = uvicorn.Config(
        create_app(settings, drain),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # Logged by the gateway itself, with the query string (user text) masked.
        access_log=False,
        # uvicorn would believe X-Forwarded-For from any loopback peer; the gateway
        # believes only the proxies its settings name (gateway.edge.client_ip).
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        # The software and its version are nobody's business but ours.
        server_header=False,
        # HTTPS when the settings give a certificate (gateway.edge.https).
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
    server = DrainingServer(config, drain, settings.drain_grace_s)
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    # Tests and the launcher read the port from this record (the port may have been 0).
    scheme = "https" if settings.https else "http"
    log.info("listening", extra={"http_host": host, "http_port": port, "scheme": scheme})
    # Everything made so far (modules, the app, its routes and schemas) lives as long as
    # the process: frozen out of the garbage collector's generations, it is no longer
    # traversed by every full collection. Measured at concurrency 32: full collections
    # cost the gateway some 65 us per request before (one of about 100 ms every 1,500
    # requests), more with traces on, which allocate more.
    gc.collect()
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        telemetry.shutdown()  # the spans still buffered are exported before the exit
    return 0


def setup_tracing() -> bool:
    """Traces if the ``OTEL_*`` environment asks for them (``switchyard.telemetry``), with
    a span for every Redis command made under a recorded span; returns whether they are
    on."""
    if not telemetry.setup("switchyard-gateway"):
        return False
    from switchyard.spans import redis_calls

    redis_calls.instrument()
    return True
