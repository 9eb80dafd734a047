"""OpenAI's streamed completions: the chunks a generation's messages become, and the
events that carry them.

A stream is a sequence of *payloads*: chunk objects, then the ``[DONE]`` sentinel; or,
when the generation fails on the way, an error envelope instead, and nothing after it.
``CompletionChunks`` makes the chunks from ``GenerateResponse`` messages (pure: no I/O,
no clock). Each payload becomes one ``data:`` event kept for replay
(``gateway.routes.replay_stream`` sends them, with ids that name the generation).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from gateway.errors.refusals import Unavailable, envelope
from gateway.replay.events import ReplayEvent
from switchyard.summarizer.v1 import summarizer_pb2

DONE = "[DONE]"
"""The last payload of a stream that ended well."""

Payload = dict[str, Any] | str
"""A chunk or an error envelope (sent as JSON), or ``DONE`` (sent as it is)."""


def finish_reason(usage: summarizer_pb2.Usage) -> str:
    """``length`` when the token limit ended the generation, else ``stop``."""
    return "length" if usage.finish_reason == summarizer_pb2.FINISH_REASON_LENGTH else "stop"


def usage_of(usage: summarizer_pb2.Usage) -> dict[str, int]:
    """OpenAI's usage object from the service's count."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.generated_tokens,
        "total_tokens": usage.prompt_tokens + usage.generated_tokens,
    }


@dataclass(frozen=True, slots=True)
class Completion:
    """What every chunk of one completion repeats."""

    id: str
    chat: bool
    """``chat.completion.chunk`` objects (with a ``delta``), else ``text_completion``."""
    created: int
    include_usage: bool


class CompletionChunks:
    """The chunks of one completion, message by message: the text of each (the first
    chunk of a chat also carries ``role: assistant``); on the last message, a chunk with
    the finish reason, then, when usage was asked for, one with ``choices: []`` and the
    usage."""

    def __init__(self, completion: Completion) -> None:
        self.completion = completion
        self.started = False

    def of(self, message: summarizer_pb2.GenerateResponse) -> list[dict[str, Any]]:
        """The chunks ``message`` becomes (none for an empty piece mid-stream)."""
        chunks = []
        if message.text or not self.started:
            chunks.append(self._chunk(message, self._piece(message.text)))
        if message.HasField("usage"):
            chunks.append(self._chunk(message, self._piece(None, finish_reason(message.usage))))
            if self.completion.include_usage:
                chunks.append(self._chunk(message, None, usage_of(message.usage)))
        return chunks

    def _piece(self, text: str | None, finish: str | None = None) -> dict[str, Any]:
        """One choice of a chunk: a text, or the end (``finish``) with no text."""
        if not self.completion.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, str] = {}
        if not self.started:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        self.started = True
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def _chunk(
        self,
        message: summarizer_pb2.GenerateResponse,
        choice: dict[str, Any] | None,
        usage: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        completion = self.completion
        self.started = True
        chunk: dict[str, Any] = {
            "id": completion.id,
            "object": "chat.completion.chunk" if completion.chat else "text_completion",
            "created": completion.created,
            "model": message.model,
            "system_fingerprint": message.version,
            "choices": [choice] if choice is not None else [],
        }
        if completion.include_usage:
            chunk["usage"] = usage  # null on every chunk but the last, as OpenAI sends
        return chunk


def payload_event(payload: Payload) -> ReplayEvent:
    """A payload as the event kept for replay; ``[DONE]`` and an error end the stream."""
    if isinstance(payload, str):
        return ReplayEvent(payload, last=payload == DONE)
    return ReplayEvent(json.dumps(payload, separators=(",", ":")), last="error" in payload)


async def payload_events(
    payloads: AsyncGenerator[Payload, None],
) -> AsyncGenerator[ReplayEvent, None]:
    """A stream's payloads as the events kept for replay. Closing this closes them."""
    async with aclosing(payloads):
        async for payload in payloads:
            yield payload_event(payload)


def lost_completion(message: str) -> ReplayEvent:
    """The error that ends a completion's stream whose generation stopped early."""
    return payload_event(envelope(Unavailable.code, message))
