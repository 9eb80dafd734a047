"""The shared body of "texts in, one result per text" RPCs, unary and bidirectional.

The classifier and NER differ only in their messages; resolving the version, checking
texts, batching, and turning a failed stream item into an item error are the same.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from grpc import aio

from services.runtime.errors import ServiceError
from services.runtime.inputs import check_text, check_texts, deadline_of, is_low_priority
from services.runtime.metrics import note_model
from services.runtime.repository import HostedVersion, ModelRepository
from services.runtime.settings import ServiceSettings
from services.runtime.status import GENERIC_INTERNAL_MESSAGE, status_code_for
from services.runtime.streams import answer_as_ready
from switchyard.common.v1 import models_pb2

Out = TypeVar("Out")
Resp = TypeVar("Resp")
Req = TypeVar("Req", bound="StreamItem")

log = logging.getLogger(__name__)


class StreamItem(Protocol):
    """What every per-text request on a bidirectional stream carries."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...


class TextRpcs(Generic[Out]):
    """Runs texts through the batcher of the model version a request names."""

    def __init__(self, repository: ModelRepository[str, Out], settings: ServiceSettings) -> None:
        self._repository = repository
        self._settings = settings

    async def unary(
        self, model: str, version: str, texts: Sequence[str], context: aio.ServicerContext[Any, Any]
    ) -> tuple[HostedVersion[str, Out], list[Out]]:
        """One result per text, in order, from the named (or default) version; a batch
        job's call (low priority) only when no interactive item waits."""
        hosted = self._resolve(model, version)
        checked = check_texts(
            texts, hosted.spec.max_input_chars, self._settings.max_texts_per_request
        )
        assert hosted.batcher is not None
        low = is_low_priority(context)
        return hosted, await hosted.batcher.submit_many(
            checked, deadline_of(context), low_priority=low
        )

    async def stream(
        self,
        requests: AsyncIterable[Req],
        context: aio.ServicerContext[Any, Any],
        answer: Callable[[Req, HostedVersion[str, Out], Out], Resp],
        refuse: Callable[[Req, models_pb2.ItemError], Resp],
    ) -> AsyncIterator[Resp]:
        """Answer each request as soon as its result is ready; a failed item gets
        ``refuse`` with an item error and the stream goes on."""
        deadline = deadline_of(context)
        low = is_low_priority(context)  # one priority for the whole stream

        async def one(request: Req) -> Resp:
            try:
                hosted = self._resolve(request.model, request.version)
                text = check_text(request.text, hosted.spec.max_input_chars)
                assert hosted.batcher is not None
                result = await hosted.batcher.submit(text, deadline, low_priority=low)
            except ServiceError as exc:
                code = status_code_for(exc).name
                return refuse(request, models_pb2.ItemError(code=code, message=exc.message))
            except Exception:
                log.exception("stream item %r failed", request.id)
                error = models_pb2.ItemError(code="INTERNAL", message=GENERIC_INTERNAL_MESSAGE)
                return refuse(request, error)
            return answer(request, hosted, result)

        responses = answer_as_ready(
            requests, one, self._settings.stream_window, self._repository.draining
        )
        async with contextlib.aclosing(responses):
            async for response in responses:
                yield response

    def _resolve(self, model: str, version: str) -> HostedVersion[str, Out]:
        hosted = self._repository.resolve(model, version)
        note_model(hosted.model, hosted.version)
        return hosted
