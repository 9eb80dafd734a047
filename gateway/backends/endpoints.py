"""The model services behind the gateway: every backend address, what it hosts, whether
it is healthy, and the choice of one for each call.

A backend address is a replica, or a name that resolves to several (a Kubernetes
Service, an Envoy listener): its channel balances per call over what the name resolves
to (gRPC round robin) and retries UNAVAILABLE on unary calls. Addresses come from the
settings and from operators at run time (``switchyard backends add``). Each is asked
``ListModels`` and the gRPC health check every ``models_refresh_s``; a call for a
model version goes, round robin, to the healthy addresses that list that version, so a
version may live in the shared service processes or in replicas of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.backends.coalescer import Coalescer
from gateway.backends.settings import BackendSettings
from gateway.errors.refusals import Unavailable
from switchyard.client.aio import AsyncClassifierClient, AsyncNerClient, AsyncSummarizerClient
from switchyard.common.v1 import models_pb2
from switchyard.service_table import FULL_NAMES, SERVICE_NAMES

log = logging.getLogger(__name__)

SERVICES = SERVICE_NAMES
SharedCallObserver = Callable[[str], Callable[[int], None]]
"""For a service, what is told how many requests each of its backend calls carries."""
ServiceClient = AsyncClassifierClient | AsyncNerClient | AsyncSummarizerClient
_CLIENTS: dict[str, type[ServiceClient]] = {
    "classifier": AsyncClassifierClient,
    "ner": AsyncNerClient,
    "summarizer": AsyncSummarizerClient,
}


@dataclass
class Endpoint:
    """One backend address of a service."""

    service: str
    address: str
    client: ServiceClient
    coalescer: Coalescer
    """Shares this backend's unary calls among the requests waiting for one."""
    added: bool = False
    """Registered by an operator at run time (else from the settings)."""
    models: list[models_pb2.ModelInfo] = field(default_factory=list)
    listed: bool = False
    healthy: bool = False

    @classmethod
    def open(
        cls,
        service: str,
        address: str,
        settings: BackendSettings,
        added: bool,
        shared: SharedCallObserver | None = None,
    ) -> Endpoint:
        client = _CLIENTS[service](
            address,
            timeout_s=settings.request_timeout_s,
            stream_timeout_s=settings.stream_timeout_s,
            tls=settings.backend_tls(),
        )
        coalescer = Coalescer(
            settings.coalesce_max_in_flight,
            settings.coalesce_max_texts,
            None if shared is None else shared(service),
        )
        return cls(service, address, client, coalescer, added)

    @property
    def name(self) -> str:
        return f"{self.service}@{self.address}"

    @property
    def classifier(self) -> AsyncClassifierClient:
        assert isinstance(self.client, AsyncClassifierClient)
        return self.client

    @property
    def ner(self) -> AsyncNerClient:
        assert isinstance(self.client, AsyncNerClient)
        return self.client

    @property
    def summarizer(self) -> AsyncSummarizerClient:
        assert isinstance(self.client, AsyncSummarizerClient)
        return self.client

    def hosts(self, model: str, version: str) -> bool:
        return any(
            info.name == model and any(v.version == version for v in info.versions)
            for info in self.models
        )

    async def check(self, timeout_s: float) -> bool:
        """Ask the gRPC health service; remember and return whether it is SERVING."""
        stub = health_pb2_grpc.HealthStub(self.client.channel)
        request = health_pb2.HealthCheckRequest(service=FULL_NAMES[self.service])
        try:
            reply = await stub.Check(request, timeout=timeout_s)
        except grpc.RpcError:
            self.healthy = False
        else:
            self.healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
        return self.healthy

    async def refresh(self, timeout_s: float) -> None:
        await self.check(timeout_s)
        try:
            self.models = await self.client.list_models(timeout_s=timeout_s)
            self.listed = True
        except grpc.RpcError as error:
            if self.listed:
                log.warning("%s: listing models failed: %s", self.name, error.code().name)
            self.listed = False

    async def close(self) -> None:
        await self.client.close()


class Backends:
    """Every backend address the gateway calls, made in the app's lifespan."""

    def __init__(self, settings: BackendSettings, shared: SharedCallObserver | None = None) -> None:
        """``shared``: for a service, what is told the number of requests of every
        classify or NER call sent to it (for metrics)."""
        self.settings = settings
        self.shared = shared
        self.endpoints: dict[str, list[Endpoint]] = {
            service: [Endpoint.open(service, a, settings, False, shared) for a in addresses]
            for service in SERVICES
            for addresses in [settings.backends(service)]
        }
        self._refresher: asyncio.Task[None] | None = None
        self._catalogue: dict[str, list[models_pb2.ModelInfo]] = {s: [] for s in SERVICES}
        self._turns: dict[tuple[str, str, str], Iterator[int]] = {}

    def all(self) -> list[Endpoint]:
        return [e for endpoints in self.endpoints.values() for e in endpoints]

    async def refresh_models(self) -> None:
        timeout_s = self.settings.health_timeout_s
        await asyncio.gather(*(e.refresh(timeout_s) for e in self.all()))
        # Merged here, once per refresh: every model request reads it.
        self._catalogue = {service: self._merged(service) for service in SERVICES}

    async def _keep_models_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.models_refresh_s)
            await self.refresh_models()

    async def start(self) -> None:
        await self.refresh_models()
        self._refresher = asyncio.create_task(self._keep_models_fresh())

    async def follow_added(self, added: list[tuple[str, str]]) -> None:
        """Open the addresses operators added (``(service, address)``) and close the ones
        they removed; new ones are listed and checked before they take calls."""
        wanted = set(added)
        opened: list[Endpoint] = []
        for service in SERVICES:
            kept: list[Endpoint] = []
            for endpoint in self.endpoints[service]:
                if endpoint.added and (service, endpoint.address) not in wanted:
                    await endpoint.close()
                else:
                    kept.append(endpoint)
            present = {e.address for e in kept}
            for s, address in added:
                if s == service and address not in present:
                    endpoint = Endpoint.open(service, address, self.settings, True, self.shared)
                    kept.append(endpoint)
                    opened.append(endpoint)
                    present.add(address)
            self.endpoints[service] = kept
        if opened:
            await asyncio.gather(*(e.refresh(self.settings.health_timeout_s) for e in opened))
        self._catalogue = {service: self._merged(service) for service in SERVICES}

    async def unhealthy(self) -> list[str]:
        """``service@address`` of every backend that does not answer SERVING now."""
        endpoints = self.all()
        answers = await asyncio.gather(
            *(e.check(self.settings.health_timeout_s) for e in endpoints)
        )
        return [e.name for e, ok in zip(endpoints, answers, strict=True) if not ok]

    def models(self, service: str) -> list[models_pb2.ModelInfo]:
        """The models of ``service`` as its backends last listed them (merged)."""
        return self._catalogue[service]

    def lists(self, service: str, model: str, version: str) -> bool:
        """Whether any backend listed ``model`` ``version`` at the last refresh."""
        return any(
            info.name == model and any(v.version == version for v in info.versions)
            for info in self._catalogue[service]
        )

    def serving(self, service: str, model: str, version: str) -> list[Endpoint]:
        """The backends that list ``model`` ``version`` and were healthy when last checked."""
        return [e for e in self.endpoints[service] if e.healthy and e.hosts(model, version)]

    def pick(self, service: str, model: str, version: str) -> Endpoint:
        """A backend for one call, round robin over the healthy ones hosting the version.

        When none of those was healthy at the last check, the ones hosting it are tried
        all the same (one may have come back since: the call's own status then decides);
        a version no backend lists goes to any backend of the service, whose answer
        (NOT_FOUND, or a result) is the authority.
        """
        endpoints = self.endpoints[service]
        hosting = [e for e in endpoints if e.hosts(model, version)] if version else []
        unlisted = [e for e in endpoints if not e.listed]
        candidates = [e for e in hosting if e.healthy] or hosting or unlisted or endpoints
        if not candidates:
            raise Unavailable(f"no {service} backend is configured", retry_after_s=1)
        # One turn counter per listed version; names no backend lists (a caller's free
        # text) share the service's, so they cannot grow this table.
        turn_key = (service, model, version) if hosting else (service, "", "")
        turns = self._turns.setdefault(turn_key, itertools.count())
        return candidates[next(turns) % len(candidates)]

    def _merged(self, service: str) -> list[models_pb2.ModelInfo]:
        merged: dict[str, models_pb2.ModelInfo] = {}
        for endpoint in self.endpoints[service]:
            for info in endpoint.models:
                known = merged.get(info.name)
                if known is None:
                    merged[info.name] = _copy(info)
                    continue
                versions = {v.version for v in known.versions}
                known.versions.extend(v for v in info.versions if v.version not in versions)
        return list(merged.values())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for endpoint in self.all():
            await endpoint.close()


def _copy(info: models_pb2.ModelInfo) -> models_pb2.ModelInfo:
    copy = models_pb2.ModelInfo()
    copy.CopyFrom(info)
    return copy
