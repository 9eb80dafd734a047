"""The ways a client streams one generation, each timed the same way: the seconds from
sending the request to each piece of text it receives.

Four paths, two per model RPC: the OpenAI route (``POST /v1/chat/completions`` through
the ``openai`` SDK) over ``Generate``, and the native route (``POST /v1/summarize/stream``
through httpx-sse) over ``SummarizeStream``; each RPC also called directly with the
switchyard gRPC client. And a stream cut short and resumed with ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from openai import AsyncOpenAI

from bench.summarizer import TEXT
from switchyard.client.aio import AsyncSummarizerClient

MAX_NEW_TOKENS = 64
MODEL = "summarizer"
CHAT = [("user", f"Explain this text to a child, in a few sentences.\n\n{TEXT}")]
"""The conversation the OpenAI route and ``Generate`` continue: its greedy answer runs to
the token limit, as the summary of ``TEXT`` nearly does (61 tokens), so that both pairs
have some forty gaps to measure."""
CHAT_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": role, "content": content} for role, content in CHAT],
    "max_tokens": MAX_NEW_TOKENS,
    "temperature": 0.0,
    "stream": True,
}
SUMMARY_BODY: dict[str, Any] = {"text": TEXT, "max_new_tokens": MAX_NEW_TOKENS, "temperature": 0.0}
RESUME_AFTER = 4
"""Events read before the connection is dropped."""


@dataclass
class Stream:
    """One generation as its client saw it."""

    started: float = field(default_factory=time.perf_counter)
    arrivals: list[float] = field(default_factory=list)
    """Seconds from the request to each non-empty piece of text. A piece is a whole word
    (one or more tokens), as the service streams them."""
    pieces: list[str] = field(default_factory=list)
    version: str = ""
    """The model version that answered."""

    def add(self, piece: str | None) -> None:
        if piece:
            self.arrivals.append(time.perf_counter() - self.started)
            self.pieces.append(piece)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ttft_s(self) -> float:
        """Seconds to the first piece of text."""
        if not self.arrivals:
            raise RuntimeError("the stream ended without text")
        return self.arrivals[0]

    @property
    def gaps_s(self) -> list[float]:
        """Seconds between consecutive pieces."""
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


async def openai_chat(client: AsyncOpenAI) -> Stream:
    """A streamed chat completion through the ``openai`` SDK, as its users write it."""
    stream = Stream()
    chunks = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": CHAT[0][1]}],
        max_tokens=MAX_NEW_TOKENS,
        temperature=0,
        stream=True,
    )
    async for chunk in chunks:
        stream.version = chunk.system_fingerprint or ""
        if chunk.choices:
            stream.add(chunk.choices[0].delta.content)
    return stream


async def native_sse(http: httpx.AsyncClient) -> Stream:
    """``POST /v1/summarize/stream``: ``token`` events until ``done``."""
    stream = Stream()
    async with aconnect_sse(http, "POST", "/v1/summarize/stream", json=SUMMARY_BODY) as source:
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            if event.event == "token":
                stream.add(event.json()["text"])
            elif event.event == "done":
                stream.version = event.json()["version"]
            else:
                raise RuntimeError(f"{event.event} event: {event.data}")
    return stream


async def grpc_generate(client: AsyncSummarizerClient) -> Stream:
    """``Generate`` over the same conversation as the OpenAI route."""
    stream = Stream()
    async for message in client.generate(
        messages=CHAT, max_new_tokens=MAX_NEW_TOKENS, temperature=0.0
    ):
        stream.version = message.version
        stream.add(message.text)
    return stream


async def grpc_summarize(client: AsyncSummarizerClient) -> Stream:
    """``SummarizeStream`` of the same text as the native route."""
    stream = Stream()
    async for message in client.summarize_stream(
        TEXT, max_new_tokens=MAX_NEW_TOKENS, temperature=0.0
    ):
        stream.version = message.version
        stream.add(message.text)
    return stream


def chat_piece(data: str) -> str | None:
    """The text of one chat chunk's ``data`` (None for ``[DONE]`` or a chunk without)."""
    if data == "[DONE]":
        return None
    chunk = json.loads(data)
    if "error" in chunk:
        raise RuntimeError(f"error event: {data}")
    choices = chunk["choices"]
    return choices[0]["delta"].get("content") if choices else None


@dataclass(frozen=True)
class Resumed:
    """A stream cut short and resumed: the fresh request's time to its first piece, and
    the reconnect's time to the first event it replays."""

    ttft_s: float
    resume_s: float


def http_client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


async def cut_and_resume(first_url: str, then_url: str, key: str) -> Resumed:
    """A streamed chat completion (raw events, for their ids) from ``first_url``, dropped
    after ``RESUME_AFTER`` events; then the same request to ``then_url`` with the first
    event's id as ``Last-Event-ID``, read to ``[DONE]`` (so that the generation ends
    before the next measurement). Each on a new connection, as a client's reconnect is.
    Resuming from the first event, not the last received, times the replay itself: the
    events it sends are already in the buffer, none waits on the model."""
    ids: list[str] = []
    async with http_client(first_url, key) as http:
        stream = Stream()
        async with aconnect_sse(http, "POST", "/v1/chat/completions", json=CHAT_BODY) as source:
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                stream.add(chat_piece(event.data))
                ids.append(event.id)
                if len(ids) == RESUME_AFTER:
                    break  # leaving the block closes the connection mid-stream
    generation, _, _ = ids[0].rpartition(".")
    replayed: list[str] = []
    last = ""
    resume_s = 0.0
    async with http_client(then_url, key) as http:
        headers = {"Last-Event-ID": ids[0]}
        started = time.perf_counter()
        async with aconnect_sse(
            http, "POST", "/v1/chat/completions", json=CHAT_BODY, headers=headers
        ) as source:
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                if not replayed:
                    resume_s = time.perf_counter() - started
                replayed.append(event.id)
                chat_piece(event.data)  # an error event fails the measurement
                last = event.data
    expected = [f"{generation}.{n}" for n in range(1, len(replayed) + 1)]
    if not replayed or replayed != expected or last != "[DONE]":
        raise RuntimeError(f"the resumed events are not the rest in order: {replayed[:5]}")
    return Resumed(stream.ttft_s, resume_s)
