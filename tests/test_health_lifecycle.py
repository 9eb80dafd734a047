"""Health follows the service's life: NOT_SERVING while loading, SERVING, NOT_SERVING on drain.

The server runs in this process with the real classifier; its loader waits for the test's
go-ahead, so the loading state is held as long as the test needs it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.classifier.model import LabelScore
from services.classifier.service import DEFINITION, load_classifier
from services.runtime.model import Predictor
from services.runtime.registry import VersionSpec
from services.runtime.server import ModelServer, ServiceDefinition
from services.runtime.settings import ClassifierSettings
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from tests.support import CLASSIFIER, write_registry

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_turns_serving_only_after_loading_and_back_on_drain(
    prepared_models: Path, tmp_path: Path
) -> None:
    go = threading.Event()

    def gated_loader(spec: VersionSpec, location: str) -> Predictor[str, list[LabelScore]]:
        go.wait(timeout=120)
        return load_classifier(spec, location)

    definition: ServiceDefinition[str, list[LabelScore]] = ServiceDefinition(
        DEFINITION.name, DEFINITION.full_name, gated_loader, DEFINITION.add_servicer
    )
    settings = ClassifierSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        registry=write_registry(tmp_path / "registry.toml", {"v1": {}}),
        drain_grace_s=10,
        model_worker="thread",  # the gated loader is a closure: it stays in this process
    )
    server = ModelServer(definition, settings)
    port = await server.start()
    loading = asyncio.ensure_future(server.load())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=CLASSIFIER))
            assert (await watch.read()).status == NOT_SERVING
            empty = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert empty.status == NOT_SERVING

            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            try:
                await stub.Classify(pb.ClassifyRequest(texts=["too early"]))
                raise AssertionError("a call before loading must be refused")
            except grpc.aio.AioRpcError as early:
                assert early.code() == grpc.StatusCode.UNAVAILABLE

            go.set()
            assert (await watch.read()).status == SERVING
            assert await loading
            reply = await stub.Classify(pb.ClassifyRequest(texts=["I love this"]))
            assert reply.results[0].labels[0].label == "positive"

            draining = asyncio.ensure_future(server.drain())
            assert (await watch.read()).status == NOT_SERVING
            await draining
    finally:
        go.set()
        if not loading.done():
            await loading
