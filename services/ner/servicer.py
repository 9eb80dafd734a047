"""The NerService RPCs: a few lines each over the shared text RPCs."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from grpc import aio

from services.ner.convert import entities_to_pb
from services.ner.model import Entity
from services.runtime.catalogue import catalogue
from services.runtime.repository import HostedVersion, ModelRepository
from services.runtime.settings import ServiceSettings
from services.runtime.text_rpcs import TextRpcs
from switchyard.common.v1 import models_pb2
from switchyard.ner.v1 import ner_pb2 as pb
from switchyard.ner.v1 import ner_pb2_grpc as pb_grpc

Context = aio.ServicerContext[Any, Any]
Entities = list[Entity]


class NerServicer(pb_grpc.NerServiceServicer):
    def __init__(
        self, repository: ModelRepository[str, Entities], settings: ServiceSettings
    ) -> None:
        self._repository = repository
        self._models_dir = settings.models_dir  # where ListModels reads agreement figures
        self._rpcs = TextRpcs(repository, settings)

    async def ExtractEntities(
        self, request: pb.ExtractEntitiesRequest, context: Context
    ) -> pb.ExtractEntitiesResponse:
        hosted, results = await self._rpcs.unary(
            request.model, request.version, request.texts, context
        )
        return pb.ExtractEntitiesResponse(
            model=hosted.model,
            version=hosted.version,
            request_id=request.request_id,
            results=[entities_to_pb(r) for r in results],
        )

    async def ExtractEntitiesStream(
        self, request_iterator: AsyncIterable[pb.ExtractEntitiesStreamRequest], context: Context
    ) -> AsyncIterator[pb.ExtractEntitiesStreamResponse]:
        def answer(
            request: pb.ExtractEntitiesStreamRequest,
            hosted: HostedVersion[str, Entities],
            entities: Entities,
        ) -> pb.ExtractEntitiesStreamResponse:
            return pb.ExtractEntitiesStreamResponse(
                id=request.id,
                model=hosted.model,
                version=hosted.version,
                result=entities_to_pb(entities),
            )

        def refuse(
            request: pb.ExtractEntitiesStreamRequest, error: models_pb2.ItemError
        ) -> pb.ExtractEntitiesStreamResponse:
            return pb.ExtractEntitiesStreamResponse(id=request.id, error=error)

        async for response in self._rpcs.stream(request_iterator, context, answer, refuse):
            yield response

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=catalogue(self._repository, models_dir=self._models_dir)
        )
