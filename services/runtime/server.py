"""The life cycle of a model service process: bind, load, serve, drain, stop.

Health (``grpc.health.v1``) says NOT_SERVING for the service's full name and for the
empty name until every model version is loaded and warmed, SERVING after, and
NOT_SERVING again as soon as a drain starts. Reflection is on, so grpcurl works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from grpc import aio
from grpc_health.v1 import _async as health_aio  # the asyncio servicer, as health.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.runtime.errors import Unavailable
from services.runtime.interceptor import ErrorMappingInterceptor
from services.runtime.metrics import ServiceMetrics
from services.runtime.model import Loader
from services.runtime.model_worker import worker_pool
from services.runtime.registry import ServiceSpec, VersionSpec, load_registry
from services.runtime.repository import HostedVersion, ModelRepository
from services.runtime.settings import ServiceSettings
from services.runtime.tls import server_credentials, transport
from switchyard import telemetry

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)

REFUSAL_SEND_S = 2.0
"""After the drain grace, how long refused calls get to send their answers."""
LAST_STATUS_GRACE_S = 1.0
"""Once no model call is left, how long the server still runs so that the last statuses
reach their callers; open health Watch streams are ended after it."""

REFUSING_LINGER_S = 1.0
"""Once no model call is left, how long the draining server keeps answering new calls
UNAVAILABLE before it stops: a call already in transit then gets that clear status, where
a stopping server would cut it off with CANCELLED (which clients do not retry)."""

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceDefinition(Generic[In, Out]):
    """What makes one model service: its names, how to load a model, its servicer."""

    name: str
    full_name: str
    loader: Loader[In, Out]
    add_servicer: Callable[
        [aio.Server, ModelRepository[In, Out], ServiceSettings, ServiceMetrics], None
    ]
    # A model whose calls hand back callbacks (streaming generation) stays in-process.
    process_worker_ok: bool = True


class ModelServer(Generic[In, Out]):
    """One service's gRPC server with health, reflection, metrics and its models."""

    def __init__(
        self,
        definition: ServiceDefinition[In, Out],
        settings: ServiceSettings,
        service_spec: ServiceSpec | None = None,
    ) -> None:
        self.definition = definition
        self.settings = settings
        spec = service_spec or load_registry(settings.registry, definition.name)
        self.repository: ModelRepository[In, Out] = ModelRepository(
            spec.only(settings.only_versions), settings.models_dir
        )
        self.metrics = ServiceMetrics()
        self.metrics.watch_queues(
            lambda: [
                (h.model, h.version, h.batcher.depth, h.batcher.low_priority_depth)
                if h.batcher
                else (h.model, h.version, 0, 0)
                for h in self.repository.hosted()
            ]
        )
        self.health = health_aio.HealthServicer()
        self.interceptor = ErrorMappingInterceptor(self.metrics)
        # One inference thread: a forward pass already uses torch's intra-op threads,
        # and two passes at once on 2 cores only fight over them.
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{definition.name}-model"
        )
        self.port = 0
        self.metrics_port = 0
        self._background: set[asyncio.Future[None]] = set()
        self._server: aio.Server | None = None

    async def start(self) -> int:
        """Bind and start answering (health NOT_SERVING until ``load``); returns the port."""
        options: list[tuple[str, int]] = []
        if self.settings.max_connection_age_s:
            # GOAWAY after this age: the client opens a new connection, resolving the name
            # again, and calls in flight finish on the old one within the grace.
            options = [
                ("grpc.max_connection_age_ms", int(self.settings.max_connection_age_s * 1000)),
                (
                    "grpc.max_connection_age_grace_ms",
                    int(self.settings.max_connection_age_grace_s * 1000),
                ),
            ]
        server = aio.server(interceptors=[self.interceptor], options=options)
        self.definition.add_servicer(server, self.repository, self.settings, self.metrics)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (self.definition.full_name, reflection.SERVICE_NAME, "grpc.health.v1.Health"),
            server,
        )
        await self._set_health(NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        credentials = server_credentials(self.settings)
        if credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        self.metrics_port = self.metrics.serve_http(self.settings.host, self.settings.metrics_port)
        log.info(
            "listening",
            extra={
                "grpc_port": self.port,
                "metrics_port": self.metrics_port,
                "grpc_service": self.definition.full_name,
                "transport": transport(self.settings),
            },
        )
        return self.port

    async def load(self) -> bool:
        """Load and warm every model version; SERVING once done. False if none loaded."""
        workers = None
        if self.settings.model_worker == "process" and self.definition.process_worker_ok:
            definition = self.definition
            count, threads = self.settings.worker_layout()

            def workers(spec: VersionSpec, location: str) -> list[ProcessPoolExecutor]:
                return [
                    worker_pool(definition.loader, spec, location, threads, definition.name)
                    for _ in range(count)
                ]

        await self.repository.load_all(
            self.definition.loader,
            self.executor,
            self.metrics.batch_observer,
            workers,
            on_broken=self._version_broken,
        )
        if not self.repository.any_ready():
            log.error("no model version could be loaded")
            return False
        await self._set_health(SERVING)
        log.info("serving", extra={"grpc_port": self.port})
        return True

    def _version_broken(self, hosted: HostedVersion[In, Out]) -> None:
        # A model worker died: this process cannot serve as configured. NOT_SERVING lets
        # the orchestrator (or the balancer's health checks) take it out and restart it.
        log.error("not serving: %s %s lost its model worker", hosted.model, hosted.version)
        task = asyncio.ensure_future(self._set_health(NOT_SERVING))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ("", self.definition.full_name):
            await self.health.set(name, status)

    async def drain(self) -> None:
        """NOT_SERVING at once, refuse new calls, let accepted ones finish, then stop."""
        log.info("draining", extra={"grace_s": self.settings.drain_grace_s})
        # Refusing first: whoever sees NOT_SERVING and calls again gets UNAVAILABLE, and
        # open streams read nothing more.
        self.interceptor.refuse_new_calls()
        self.repository.start_draining()
        await self.health.enter_graceful_shutdown()
        # The server stays up, answering new calls UNAVAILABLE, until the accepted ones are
        # done; stopping it at once would cut calls in transit with an unclear CANCELLED.
        # Long-lived health Watch streams are not waited for.
        try:
            async with asyncio.timeout(self.settings.drain_grace_s):
                await self.interceptor.wait_idle()
        except TimeoutError:
            # Out of grace: what still waits in a queue is refused with a status the caller
            # can retry on, rather than cut off; work already running is cancelled.
            refused = self.repository.reject_queued(
                Unavailable("the service stopped before this request ran; retry elsewhere")
            )
            log.warning("drain grace ran out", extra={"refused_queued": refused})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFUSAL_SEND_S):
                    await self.interceptor.wait_idle()
        if self._server is not None:
            await asyncio.sleep(REFUSING_LINGER_S)
            await self._server.stop(LAST_STATUS_GRACE_S)
        await self.repository.close()
        self.metrics.stop_http()
        await asyncio.to_thread(self.executor.shutdown, wait=True)
        log.info("stopped")


async def serve_until_signalled(server: ModelServer[In, Out]) -> int:
    """Run a service until SIGTERM or SIGINT, then drain; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    loader = asyncio.ensure_future(server.load())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loader, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if loader.done() and not loader.result():
        stopped.cancel()
        await server.drain()
        return 1
    await stopped
    if not loader.done():
        loader.cancel()
    await server.drain()
    return 0


def run_service(definition: ServiceDefinition[In, Out], settings: ServiceSettings) -> int:
    """A service process's main: logs, torch threads, serve until signalled, drain."""
    from services.runtime.torch_setup import configure_torch
    from switchyard.logs import configure_logging

    configure_logging(definition.name, settings.log_level)
    configure_torch(settings.torch_threads)
    telemetry.setup(f"{telemetry.SERVICE_NAME_PREFIX}{definition.name}")

    async def serve() -> int:
        telemetry.export_from_running_loop()
        try:
            return await serve_until_signalled(ModelServer(definition, settings))
        finally:
            await telemetry.stop_exporting_from_loop()

    try:
        return asyncio.run(serve())
    finally:
        telemetry.shutdown()  # the spans still buffered are exported before the exit
