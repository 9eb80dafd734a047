"""Building request messages from plain Python values: the one place the sync and the
async clients (``switchyard.client.sync``, ``switchyard.client.aio``) make them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from switchyard.classifier.v1 import classifier_pb2
from switchyard.ner.v1 import ner_pb2
from switchyard.summarizer.v1 import summarizer_pb2

TextItem = str | tuple[str, str]
"""A text to send on a stream, or an (id, text) pair; bare texts get their position as id."""


def numbered(items: Iterable[TextItem]) -> Iterator[tuple[str, str]]:
    for position, item in enumerate(items):
        yield (str(position), item) if isinstance(item, str) else item


def classify_request(
    texts: Sequence[str], model: str, version: str, top_k: int, request_id: str
) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(
        texts=texts, model=model, version=version, top_k=top_k, request_id=request_id
    )


def classify_stream_requests(
    items: Iterable[TextItem], model: str, version: str, top_k: int
) -> Iterator[classifier_pb2.ClassifyStreamRequest]:
    for item_id, text in numbered(items):
        yield classifier_pb2.ClassifyStreamRequest(
            id=item_id, text=text, model=model, version=version, top_k=top_k
        )


def extract_entities_request(
    texts: Sequence[str], model: str, version: str, request_id: str
) -> ner_pb2.ExtractEntitiesRequest:
    return ner_pb2.ExtractEntitiesRequest(
        texts=texts, model=model, version=version, request_id=request_id
    )


def ner_stream_requests(
    items: Iterable[TextItem], model: str, version: str
) -> Iterator[ner_pb2.ExtractEntitiesStreamRequest]:
    for item_id, text in numbered(items):
        yield ner_pb2.ExtractEntitiesStreamRequest(
            id=item_id, text=text, model=model, version=version
        )


def generation_options(
    max_new_tokens: int,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    stop: Sequence[str] = (),
) -> summarizer_pb2.GenerationOptions:
    options = summarizer_pb2.GenerationOptions(max_new_tokens=max_new_tokens, stop=list(stop))
    if temperature is not None:
        options.temperature = temperature
    if top_p is not None:
        options.top_p = top_p
    if seed is not None:
        options.seed = seed
    return options


def summarize_request(
    text: str,
    model: str,
    version: str,
    request_id: str,
    options: summarizer_pb2.GenerationOptions,
) -> summarizer_pb2.SummarizeRequest:
    return summarizer_pb2.SummarizeRequest(
        text=text, model=model, version=version, request_id=request_id, options=options
    )


def summarize_stream_request(
    text: str,
    model: str,
    version: str,
    request_id: str,
    options: summarizer_pb2.GenerationOptions,
) -> summarizer_pb2.SummarizeStreamRequest:
    return summarizer_pb2.SummarizeStreamRequest(
        text=text, model=model, version=version, request_id=request_id, options=options
    )


def generate_request(
    prompt: str | None,
    messages: Sequence[tuple[str, str]] | None,
    model: str,
    version: str,
    request_id: str,
    options: summarizer_pb2.GenerationOptions,
) -> summarizer_pb2.GenerateRequest:
    """A generation from a prompt, or from a conversation of (role, content) turns."""
    if (prompt is None) == (messages is None):
        raise ValueError("give either a prompt or messages")
    request = summarizer_pb2.GenerateRequest(
        model=model, version=version, request_id=request_id, options=options
    )
    if prompt is not None:
        request.prompt = prompt
    else:
        assert messages is not None
        turns = [summarizer_pb2.ChatMessage(role=r, content=c) for r, c in messages]
        request.conversation.messages.extend(turns)
    return request
