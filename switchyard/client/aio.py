"""asyncio clients, one per model service (grpc.aio channels)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any

from grpc import aio

from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.client.config import (
    CLASSIFIER,
    DEFAULT_STREAM_TIMEOUT_S,
    DEFAULT_TARGETS,
    DEFAULT_TIMEOUT_S,
    NER,
    SUMMARIZER,
    channel_options,
)
from switchyard.client.requests import (
    TextItem,
    classify_request,
    classify_stream_requests,
    extract_entities_request,
    generate_request,
    generation_options,
    ner_stream_requests,
    summarize_request,
    summarize_stream_request,
)
from switchyard.client.tls import ChannelTLS, open_aio_channel
from switchyard.common.v1 import models_pb2
from switchyard.ner.v1 import ner_pb2, ner_pb2_grpc
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

Metadata = Sequence[tuple[str, str]]


class _AsyncClient:
    service = ""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        stream_timeout_s: float = DEFAULT_STREAM_TIMEOUT_S,
        tls: ChannelTLS | None = None,
    ) -> None:
        # ``tls``: a secure channel (the services' CA, and a client certificate for mTLS).
        self.channel = open_aio_channel(target, channel_options(self.service), tls)
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncClassifierClient(_AsyncClient):
    service = CLASSIFIER

    def __init__(
        self,
        target: str = DEFAULT_TARGETS["classifier"],
        *,
        tls: ChannelTLS | None = None,
        **kwargs: float,
    ) -> None:
        super().__init__(target, tls=tls, **kwargs)
        self.stub = classifier_pb2_grpc.ClassifierServiceStub(self.channel)

    async def __aenter__(self) -> AsyncClassifierClient:
        return self

    async def classify(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        version: str = "",
        top_k: int = 0,
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> classifier_pb2.ClassifyResponse:
        request = classify_request(texts, model, version, top_k, request_id)
        return await self.stub.Classify(
            request, timeout=timeout_s or self.timeout_s, metadata=metadata
        )

    async def classify_stream(
        self,
        items: Iterable[TextItem],
        *,
        model: str = "",
        version: str = "",
        top_k: int = 0,
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        """Send many texts, receive each result as soon as it is ready (tagged by id)."""
        call = self.stub.ClassifyStream(
            classify_stream_requests(items, model, version, top_k),
            timeout=timeout_s or self.stream_timeout_s,
            metadata=metadata,
        )
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()  # leaving early stops the service's work on the rest

    async def list_models(self, timeout_s: float | None = None) -> list[models_pb2.ModelInfo]:
        request = classifier_pb2.ListModelsRequest()
        reply = await self.stub.ListModels(request, timeout=timeout_s or self.timeout_s)
        return list(reply.models)


class AsyncNerClient(_AsyncClient):
    service = NER

    def __init__(
        self,
        target: str = DEFAULT_TARGETS["ner"],
        *,
        tls: ChannelTLS | None = None,
        **kwargs: float,
    ) -> None:
        super().__init__(target, tls=tls, **kwargs)
        self.stub = ner_pb2_grpc.NerServiceStub(self.channel)

    async def __aenter__(self) -> AsyncNerClient:
        return self

    async def extract_entities(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> ner_pb2.ExtractEntitiesResponse:
        request = extract_entities_request(texts, model, version, request_id)
        return await self.stub.ExtractEntities(
            request, timeout=timeout_s or self.timeout_s, metadata=metadata
        )

    async def extract_entities_stream(
        self,
        items: Iterable[TextItem],
        *,
        model: str = "",
        version: str = "",
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> AsyncIterator[ner_pb2.ExtractEntitiesStreamResponse]:
        call = self.stub.ExtractEntitiesStream(
            ner_stream_requests(items, model, version),
            timeout=timeout_s or self.stream_timeout_s,
            metadata=metadata,
        )
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()  # leaving early stops the service's work on the rest

    async def list_models(self, timeout_s: float | None = None) -> list[models_pb2.ModelInfo]:
        request = ner_pb2.ListModelsRequest()
        reply = await self.stub.ListModels(request, timeout=timeout_s or self.timeout_s)
        return list(reply.models)


class AsyncSummarizerClient(_AsyncClient):
    service = SUMMARIZER

    def __init__(
        self,
        target: str = DEFAULT_TARGETS["summarizer"],
        *,
        tls: ChannelTLS | None = None,
        **kwargs: float,
    ) -> None:
        super().__init__(target, tls=tls, **kwargs)
        self.stub = summarizer_pb2_grpc.SummarizerServiceStub(self.channel)

    async def __aenter__(self) -> AsyncSummarizerClient:
        return self

    async def list_models(self, timeout_s: float | None = None) -> list[models_pb2.ModelInfo]:
        request = summarizer_pb2.ListModelsRequest()
        reply = await self.stub.ListModels(request, timeout=timeout_s or self.timeout_s)
        return list(reply.models)

    async def summarize(
        self,
        text: str,
        *,
        max_new_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        model: str = "",
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> summarizer_pb2.SummarizeResponse:
        options = generation_options(max_new_tokens, temperature, top_p, seed)
        request = summarize_request(text, model, version, request_id, options)
        return await self.stub.Summarize(
            request, timeout=timeout_s or self.stream_timeout_s, metadata=metadata
        )

    def open_summarize_stream(
        self,
        text: str,
        *,
        max_new_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        model: str = "",
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> aio.UnaryStreamCall[
        summarizer_pb2.SummarizeStreamRequest, summarizer_pb2.SummarizeStreamResponse
    ]:
        """The streaming call itself, for callers that read it message by message
        (``await call.read()``) and must ``cancel()`` it when they stop early."""
        options = generation_options(max_new_tokens, temperature, top_p, seed)
        request = summarize_stream_request(text, model, version, request_id, options)
        return self.stub.SummarizeStream(
            request, timeout=timeout_s or self.stream_timeout_s, metadata=metadata
        )

    def open_generate(
        self,
        *,
        prompt: str | None = None,
        messages: Sequence[tuple[str, str]] | None = None,
        max_new_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        model: str = "",
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> aio.UnaryStreamCall[summarizer_pb2.GenerateRequest, summarizer_pb2.GenerateResponse]:
        """A generation from a ``prompt`` continued as it is, or from ``messages``
        ((role, content) turns) through the model's chat template: the streaming call,
        read message by message, to be ``cancel()``-ed by a caller that stops early."""
        options = generation_options(max_new_tokens, temperature, top_p, seed, stop)
        request = generate_request(prompt, messages, model, version, request_id, options)
        return self.stub.Generate(
            request, timeout=timeout_s or self.stream_timeout_s, metadata=metadata
        )

    async def generate(self, **options: Any) -> AsyncIterator[summarizer_pb2.GenerateResponse]:
        """Every message of a generation (options as for ``open_generate``); leaving the
        loop early cancels it."""
        call = self.open_generate(**options)
        try:
            async for message in call:
                yield message
        finally:
            call.cancel()

    async def summarize_stream(
        self, text: str, **options: Any
    ) -> AsyncIterator[summarizer_pb2.SummarizeStreamResponse]:
        """Every message of the stream: pieces of text, then the usage (options as for
        ``open_summarize_stream``). Leaving the loop early cancels the call, and the
        service stops generating."""
        call = self.open_summarize_stream(text, **options)
        try:
            async for message in call:
                yield message
        finally:
            call.cancel()

    async def summary_pieces(self, text: str, **options: Any) -> AsyncIterator[str]:
        """Just the pieces of the summary, as they are generated (options as above)."""
        async for message in self.summarize_stream(text, **options):
            if message.text:
                yield message.text
