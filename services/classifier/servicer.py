"""The ClassifierService RPCs: a few lines each over the shared text RPCs."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from grpc import aio

from services.classifier.convert import classification_to_pb
from services.classifier.model import LabelScore
from services.runtime.catalogue import catalogue
from services.runtime.repository import HostedVersion, ModelRepository
from services.runtime.settings import ServiceSettings
from services.runtime.text_rpcs import TextRpcs
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc as pb_grpc
from switchyard.common.v1 import models_pb2

Context = aio.ServicerContext[Any, Any]
Scores = list[LabelScore]


class ClassifierServicer(pb_grpc.ClassifierServiceServicer):
    def __init__(self, repository: ModelRepository[str, Scores], settings: ServiceSettings) -> None:
        self._repository = repository
        self._models_dir = settings.models_dir  # where ListModels reads agreement figures
        self._rpcs = TextRpcs(repository, settings)

    async def Classify(self, request: pb.ClassifyRequest, context: Context) -> pb.ClassifyResponse:
        hosted, results = await self._rpcs.unary(
            request.model, request.version, request.texts, context
        )
        return pb.ClassifyResponse(
            model=hosted.model,
            version=hosted.version,
            request_id=request.request_id,
            results=[classification_to_pb(r, request.top_k) for r in results],
        )

    async def ClassifyStream(
        self, request_iterator: AsyncIterable[pb.ClassifyStreamRequest], context: Context
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        def answer(
            request: pb.ClassifyStreamRequest, hosted: HostedVersion[str, Scores], scores: Scores
        ) -> pb.ClassifyStreamResponse:
            return pb.ClassifyStreamResponse(
                id=request.id,
                model=hosted.model,
                version=hosted.version,
                result=classification_to_pb(scores, request.top_k),
            )

        def refuse(
            request: pb.ClassifyStreamRequest, error: models_pb2.ItemError
        ) -> pb.ClassifyStreamResponse:
            return pb.ClassifyStreamResponse(id=request.id, error=error)

        async for response in self._rpcs.stream(request_iterator, context, answer, refuse):
            yield response

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=catalogue(self._repository, models_dir=self._models_dir)
        )
