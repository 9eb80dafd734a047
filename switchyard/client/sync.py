"""Blocking clients, one per model service."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

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
from switchyard.client.tls import ChannelTLS, open_channel
from switchyard.common.v1 import models_pb2
from switchyard.ner.v1 import ner_pb2, ner_pb2_grpc
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

T = TypeVar("T")


def _cancelled_on_exit(call: Any) -> Iterator[T]:
    """The call's messages; leaving the loop early cancels the call, so the service stops
    working on it at once instead of when the iterator is collected."""
    try:
        yield from call
    finally:
        call.cancel()


class _Client:
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
        self.channel = open_channel(target, channel_options(self.service), tls)
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> _Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ClassifierClient(_Client):
    """``ClassifierClient("localhost:50051").classify(["I love this"])``."""

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

    def __enter__(self) -> ClassifierClient:
        return self

    def classify(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        version: str = "",
        top_k: int = 0,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> classifier_pb2.ClassifyResponse:
        request = classify_request(texts, model, version, top_k, request_id)
        return self.stub.Classify(request, timeout=timeout_s or self.timeout_s)

    def classify_stream(
        self,
        items: Iterable[TextItem],
        *,
        model: str = "",
        version: str = "",
        top_k: int = 0,
        timeout_s: float | None = None,
    ) -> Iterator[classifier_pb2.ClassifyStreamResponse]:
        """Send many texts, receive each result as soon as it is ready (tagged by id)."""
        requests = classify_stream_requests(items, model, version, top_k)
        call = self.stub.ClassifyStream(requests, timeout=timeout_s or self.stream_timeout_s)
        yield from _cancelled_on_exit(call)

    def list_models(self) -> list[models_pb2.ModelInfo]:
        reply = self.stub.ListModels(classifier_pb2.ListModelsRequest(), timeout=self.timeout_s)
        return list(reply.models)


class NerClient(_Client):
    """``NerClient("localhost:50052").extract_entities(["Ada Lovelace lived in London."])``."""

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

    def __enter__(self) -> NerClient:
        return self

    def extract_entities(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> ner_pb2.ExtractEntitiesResponse:
        request = extract_entities_request(texts, model, version, request_id)
        return self.stub.ExtractEntities(request, timeout=timeout_s or self.timeout_s)

    def extract_entities_stream(
        self,
        items: Iterable[TextItem],
        *,
        model: str = "",
        version: str = "",
        timeout_s: float | None = None,
    ) -> Iterator[ner_pb2.ExtractEntitiesStreamResponse]:
        """Send many texts, receive each one's entities as soon as they are found."""
        requests = ner_stream_requests(items, model, version)
        call = self.stub.ExtractEntitiesStream(requests, timeout=timeout_s or self.stream_timeout_s)
        yield from _cancelled_on_exit(call)

    def list_models(self) -> list[models_pb2.ModelInfo]:
        reply = self.stub.ListModels(ner_pb2.ListModelsRequest(), timeout=self.timeout_s)
        return list(reply.models)


class SummarizerClient(_Client):
    """``SummarizerClient("localhost:50053").summarize("...").summary``."""

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

    def __enter__(self) -> SummarizerClient:
        return self

    def summarize(
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
    ) -> summarizer_pb2.SummarizeResponse:
        options = generation_options(max_new_tokens, temperature, top_p, seed)
        request = summarize_request(text, model, version, request_id, options)
        return self.stub.Summarize(request, timeout=timeout_s or self.stream_timeout_s)

    def summarize_stream(
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
    ) -> Iterator[summarizer_pb2.SummarizeStreamResponse]:
        """Every message of the stream: pieces of text, then the usage."""
        options = generation_options(max_new_tokens, temperature, top_p, seed)
        request = summarize_stream_request(text, model, version, request_id, options)
        call = self.stub.SummarizeStream(request, timeout=timeout_s or self.stream_timeout_s)
        yield from _cancelled_on_exit(call)

    def generate(
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
    ) -> Iterator[summarizer_pb2.GenerateResponse]:
        """Every message of a generation from a ``prompt`` continued as it is, or from
        ``messages`` ((role, content) turns) through the model's chat template: pieces of
        text, then the usage. Leaving the loop early cancels it."""
        options = generation_options(max_new_tokens, temperature, top_p, seed, stop)
        request = generate_request(prompt, messages, model, version, request_id, options)
        call = self.stub.Generate(request, timeout=timeout_s or self.stream_timeout_s)
        yield from _cancelled_on_exit(call)

    def summary_pieces(self, text: str, **options: Any) -> Iterator[str]:
        """Just the pieces of the summary, as they are generated (options as above)."""
        for message in self.summarize_stream(text, **options):
            if message.text:
                yield message.text
