"""The ClassifierService RPCs: a few lines each over the model repository."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from grpc import aio

from services.classifier.convert import classification_to_pb
from services.classifier.model import LabelScore
from services.runtime.catalogue import catalogue
from services.runtime.errors import ServiceError
from services.runtime.inputs import check_text, check_texts, deadline_of
from services.runtime.metrics import note_model
from services.runtime.repository import ModelRepository
from services.runtime.settings import ServiceSettings
from services.runtime.status import GENERIC_INTERNAL_MESSAGE, status_code_for
from services.runtime.streams import answer_as_ready
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc as pb_grpc
from switchyard.common.v1 import models_pb2

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]


class ClassifierServicer(pb_grpc.ClassifierServiceServicer):
    def __init__(
        self, repository: ModelRepository[str, list[LabelScore]], settings: ServiceSettings
    ) -> None:
        self._repository = repository
        self._settings = settings

    async def Classify(self, request: pb.ClassifyRequest, context: Context) -> pb.ClassifyResponse:
        hosted = self._repository.resolve(request.model, request.version)
        note_model(hosted.model, hosted.version)
        texts = check_texts(
            request.texts, hosted.spec.max_input_chars, self._settings.max_texts_per_request
        )
        assert hosted.batcher is not None
        results = await hosted.batcher.submit_many(texts, deadline_of(context))
        return pb.ClassifyResponse(
            model=hosted.model,
            version=hosted.version,
            request_id=request.request_id,
            results=[classification_to_pb(r, request.top_k) for r in results],
        )

    async def ClassifyStream(
        self, request_iterator: AsyncIterable[pb.ClassifyStreamRequest], context: Context
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        deadline = deadline_of(context)

        async def answer(request: pb.ClassifyStreamRequest) -> pb.ClassifyStreamResponse:
            try:
                hosted = self._repository.resolve(request.model, request.version)
                note_model(hosted.model, hosted.version)
                text = check_text(request.text, hosted.spec.max_input_chars)
                assert hosted.batcher is not None
                scores = await hosted.batcher.submit(text, deadline)
            except ServiceError as exc:
                error = models_pb2.ItemError(code=status_code_for(exc).name, message=exc.message)
                return pb.ClassifyStreamResponse(id=request.id, error=error)
            except Exception:
                log.exception("stream item %r failed", request.id)
                error = models_pb2.ItemError(code="INTERNAL", message=GENERIC_INTERNAL_MESSAGE)
                return pb.ClassifyStreamResponse(id=request.id, error=error)
            return pb.ClassifyStreamResponse(
                id=request.id,
                model=hosted.model,
                version=hosted.version,
                result=classification_to_pb(scores, request.top_k),
            )

        async for response in answer_as_ready(
            request_iterator, answer, self._settings.stream_window
        ):
            yield response

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=catalogue(self._repository))
