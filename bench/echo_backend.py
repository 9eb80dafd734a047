"""A classifier service that answers at once, for measuring the gateway alone: with the
real model (~400 texts/s here) a body of millions of short lines would take hours, and
the figure would be the model's. It runs on its own event loop in a thread of the bench
process and gives every text the same label; it lists one model (``sentiment``, version
``v1``, the default) and reports SERVING for the classifier's full service name, as the
gateway asks of every backend.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from grpc import aio
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.common.v1 import models_pb2
from switchyard.processes import CLASSIFIER

Context = aio.ServicerContext[Any, Any]

MODEL, VERSION, LABEL = "sentiment", "v1", "positive"
START_TIMEOUT_S = 30.0


class EchoClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    def __init__(self) -> None:
        self.label = classifier_pb2.LabelScore(label=LABEL, score=1.0)

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: Context
    ) -> classifier_pb2.ClassifyResponse:
        result = classifier_pb2.Classification(labels=[self.label])
        return classifier_pb2.ClassifyResponse(
            model=MODEL,
            version=VERSION,
            request_id=request.request_id,
            results=[result for _ in request.texts],
        )

    async def ClassifyStream(
        self, requests: AsyncIterator[classifier_pb2.ClassifyStreamRequest], context: Context
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        """Each text answered as soon as it is read."""
        result = classifier_pb2.Classification(labels=[self.label])
        async for request in requests:
            yield classifier_pb2.ClassifyStreamResponse(
                id=request.id, model=MODEL, version=VERSION, result=result
            )

    async def ListModels(
        self, request: classifier_pb2.ListModelsRequest, context: Context
    ) -> classifier_pb2.ListModelsResponse:
        version = models_pb2.ModelVersion(
            version=VERSION, status=models_pb2.MODEL_STATUS_READY, is_default=True
        )
        model = models_pb2.ModelInfo(name=MODEL, is_default=True, versions=[version])
        return classifier_pb2.ListModelsResponse(models=[model])


@contextmanager
def echo_backend() -> Iterator[str]:
    """The echo classifier on a free port; yields its address."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    port = 0

    async def serve() -> None:
        nonlocal port
        server = aio.server()
        classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(EchoClassifier(), server)
        health = health_aio.HealthServicer()
        for name in ("", CLASSIFIER):
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.set()
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT_S):
        raise RuntimeError("the echo classifier did not start")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT_S)
        loop.close()
