"""The model services behind the gateway: one balanced gRPC channel per service for
calls, and a plain channel per replica address for health checks and model listing.

Calls go through the typed asyncio clients, whose channel balances per call over every
replica (gRPC round robin) and retries UNAVAILABLE on unary calls. The models and
versions each service hosts are learnt from ``ListModels`` on every replica and listed
again every ``models_refresh_s``, so a new version or a restarted replica is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.settings import GatewaySettings
from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.client.aio import AsyncClassifierClient, AsyncNerClient, AsyncSummarizerClient
from switchyard.client.config import CLASSIFIER, NER, SUMMARIZER
from switchyard.common.v1 import models_pb2
from switchyard.ner.v1 import ner_pb2, ner_pb2_grpc
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

log = logging.getLogger(__name__)

SERVICES = ("classifier", "ner", "summarizer")
FULL_NAMES = {"classifier": CLASSIFIER, "ner": NER, "summarizer": SUMMARIZER}


def balanced_target(addresses: list[str]) -> str:
    """One gRPC target for every replica: a name (resolved by DNS to all its addresses)
    or a list of IP addresses."""
    if len(addresses) == 1:
        return addresses[0]
    hosts = [a.rsplit(":", 1)[0].strip("[]") for a in addresses]
    scheme = "ipv6" if ipaddress.ip_address(hosts[0]).version == 6 else "ipv4"
    return f"{scheme}:{','.join(addresses)}"


@dataclass
class ReplicaState:
    address: str
    models: list[models_pb2.ModelInfo] = field(default_factory=list)
    listed: bool = False


class Replica:
    """One address of a service: health checks and model listing go to it alone."""

    def __init__(self, service: str, address: str) -> None:
        self.service = service
        self.address = address
        self.channel = aio.insecure_channel(address)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.state = ReplicaState(address)

    async def serving(self, timeout_s: float) -> bool:
        request = health_pb2.HealthCheckRequest(service=FULL_NAMES[self.service])
        try:
            reply = await self.health.Check(request, timeout=timeout_s)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def list_models(self, timeout_s: float) -> list[models_pb2.ModelInfo]:
        if self.service == "classifier":
            c = classifier_pb2_grpc.ClassifierServiceStub(self.channel)
            reply_c = await c.ListModels(classifier_pb2.ListModelsRequest(), timeout=timeout_s)
            return list(reply_c.models)
        if self.service == "ner":
            n = ner_pb2_grpc.NerServiceStub(self.channel)
            reply_n = await n.ListModels(ner_pb2.ListModelsRequest(), timeout=timeout_s)
            return list(reply_n.models)
        s = summarizer_pb2_grpc.SummarizerServiceStub(self.channel)
        reply_s = await s.ListModels(summarizer_pb2.ListModelsRequest(), timeout=timeout_s)
        return list(reply_s.models)

    async def refresh(self, timeout_s: float) -> None:
        try:
            self.state.models = await self.list_models(timeout_s)
            self.state.listed = True
        except grpc.RpcError as error:
            if self.state.listed:
                log.warning(
                    "%s at %s: listing models failed: %s",
                    self.service,
                    self.address,
                    error.code().name,
                )
            self.state.listed = False

    async def close(self) -> None:
        await self.channel.close(None)


class Backends:
    """Every model service the gateway calls, made in the app's lifespan."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        timeouts = {
            "timeout_s": settings.request_timeout_s,
            "stream_timeout_s": settings.stream_timeout_s,
        }
        self.classifier = AsyncClassifierClient(
            balanced_target(settings.classifier_backends), **timeouts
        )
        self.ner = AsyncNerClient(balanced_target(settings.ner_backends), **timeouts)
        self.summarizer = AsyncSummarizerClient(
            balanced_target(settings.summarizer_backends), **timeouts
        )
        self.replicas: dict[str, list[Replica]] = {
            service: [Replica(service, a) for a in settings.backends(service)]
            for service in SERVICES
        }
        self._refresher: asyncio.Task[None] | None = None
        self._catalogue: dict[str, list[models_pb2.ModelInfo]] = {s: [] for s in SERVICES}

    async def refresh_models(self) -> None:
        timeout_s = self.settings.health_timeout_s
        await asyncio.gather(
            *(r.refresh(timeout_s) for replicas in self.replicas.values() for r in replicas)
        )
        # Merged here, once per refresh: every model request reads it.
        self._catalogue = {service: self._merged(service) for service in SERVICES}

    async def _keep_models_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.models_refresh_s)
            await self.refresh_models()

    async def start(self) -> None:
        await self.refresh_models()
        self._refresher = asyncio.create_task(self._keep_models_fresh())

    async def unhealthy(self) -> list[str]:
        """``service@address`` of every replica that does not answer SERVING now."""
        replicas = [r for rs in self.replicas.values() for r in rs]
        answers = await asyncio.gather(
            *(r.serving(self.settings.health_timeout_s) for r in replicas)
        )
        return [
            f"{r.service}@{r.address}" for r, ok in zip(replicas, answers, strict=True) if not ok
        ]

    def models(self, service: str) -> list[models_pb2.ModelInfo]:
        """The models of ``service`` as its replicas last listed them (merged)."""
        return self._catalogue[service]

    def _merged(self, service: str) -> list[models_pb2.ModelInfo]:
        merged: dict[str, models_pb2.ModelInfo] = {}
        for replica in self.replicas[service]:
            for info in replica.state.models:
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
        await self.classifier.close()
        await self.ner.close()
        await self.summarizer.close()
        for replicas in self.replicas.values():
            for replica in replicas:
                await replica.close()


def _copy(info: models_pb2.ModelInfo) -> models_pb2.ModelInfo:
    copy = models_pb2.ModelInfo()
    copy.CopyFrom(info)
    return copy
