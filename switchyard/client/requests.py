"""Building request messages from plain Python values, shared by sync and async clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from switchyard.classifier.v1 import classifier_pb2
from switchyard.ner.v1 import ner_pb2
from switchyard.summarizer.v1 import summarizer_pb2

TextItem = str | tuple[str, str]
"""A text to send on a stream, or an (id, text) pair; bare texts get their position as id."""


def numbered(items: Iterable[TextItem]) -> Iterator[tuple[str, str]]:
    for position, item in enumerate(items):
        yield (str(position), item) if isinstance(item, str) else item


def classify_stream_requests(
    items: Iterable[TextItem], model: str, version: str, top_k: int
) -> Iterator[classifier_pb2.ClassifyStreamRequest]:
    for item_id, text in numbered(items):
        yield classifier_pb2.ClassifyStreamRequest(
            id=item_id, text=text, model=model, version=version, top_k=top_k
        )


def ner_stream_requests(
    items: Iterable[TextItem], model: str, version: str
) -> Iterator[ner_pb2.ExtractEntitiesStreamRequest]:
    for item_id, text in numbered(items):
        yield ner_pb2.ExtractEntitiesStreamRequest(
            id=item_id, text=text, model=model, version=version
        )


def generation_options(
    max_new_tokens: int, temperature: float | None, top_p: float | None, seed: int | None
) -> summarizer_pb2.GenerationOptions:
    options = summarizer_pb2.GenerationOptions(max_new_tokens=max_new_tokens)
    if temperature is not None:
        options.temperature = temperature
    if top_p is not None:
        options.top_p = top_p
    if seed is not None:
        options.seed = seed
    return options
