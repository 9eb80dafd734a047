"""A classify or NER request's backend call, shared with the same version's other
requests waiting for one (``gateway.backends.coalescer``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from gateway.backends.coalescer import Metadata
from gateway.edge import request_span
from gateway.pipeline import PRIORITY_METADATA, PlannedCall

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Answered = tuple[T, str, str]
"""One text's result, with the model and the version that answered the call carrying it."""


class Reply(Generic[T]):
    """The part of a shared call's answer that is one request's."""

    def __init__(self, answered: Sequence[Answered[T]]) -> None:
        self.results = [result for result, _, _ in answered]
        # One call answers every text of a request, so they share one model and version.
        self.model, self.version = (answered[0][1], answered[0][2]) if answered else ("", "")


class _Reply(Protocol[T_co]):
    """A ClassifyResponse or an ExtractEntitiesResponse."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def results(self) -> Sequence[T_co]: ...


def per_text(reply: _Reply[T]) -> list[Answered[T]]:
    """A call's answer as one ``Answered`` per text."""
    return [(result, reply.model, reply.version) for result in reply.results]


def version_of(plan: PlannedCall) -> dict[str, str]:
    """The model, version and request id a backend call names."""
    return {
        "model": plan.target.model,
        "version": plan.target.version,
        "request_id": plan.request_id,
    }


def shared_call(
    plan: PlannedCall,
    rpc: str,
    options: object,
    texts: Sequence[str],
    send: Callable[[list[str], float, Metadata], Awaitable[list[Answered[T]]]],
) -> Awaitable[list[Answered[T]]]:
    """``send`` of ``texts``, alone or with other requests for the same method, version
    and ``options`` (what else of the request changes the answer), at the same priority.
    A recorded trace of a request another request's call carries links to that call."""
    metadata = plan.call_metadata(rpc)
    low_priority = any(key == PRIORITY_METADATA for key, _ in plan.metadata)
    key = (rpc, plan.target.model, plan.target.version, options, low_priority)
    joined = request_span.call_linker()
    return plan.endpoint.coalescer.call(key, texts, plan.timeout_s, metadata, send, joined)
