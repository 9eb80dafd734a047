"""One event of a streamed generation as it is kept for replay, who may replay it, and
its id on the wire: ``<generation id>.<index>``, so that the ``Last-Event-ID`` a client
sends back names the generation as well as the place in it."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

GENERATION_PREFIX = "gen_"


@dataclass(frozen=True)
class ReplayEvent:
    """A Server-Sent Event of a generation, already encoded by the route that streams it."""

    data: str
    event: str | None = None
    """The SSE event name; None for a plain message (OpenAI's chunks)."""
    last: bool = False
    """The generation's final event: nothing follows it."""
    index: int = -1
    """Its place in the generation, from 0; given when it is kept."""


LostEvent = Callable[[str], ReplayEvent]
"""How a route tells its client, in its own framing, that the generation stopped without
its final event (the message says why); the event is the stream's last."""


@dataclass(frozen=True)
class StreamOwner:
    """Who may resume a generation, and through which route's framing."""

    caller: str
    """The id of the caller who started it."""
    kind: str
    """The route family whose events it holds (``summary``, ``chat``, ``completion``)."""
    credential: str = ""
    """The SHA-256 of the single-use stream token it was opened with, if any: a browser's
    EventSource sends the same URL again when it reconnects, and no other credential."""


def credential_of(stream_token: str) -> str:
    return hashlib.sha256(stream_token.encode()).hexdigest()


def new_generation_id() -> str:
    # token_urlsafe never writes a dot, which separates the id from the index.
    return GENERATION_PREFIX + secrets.token_urlsafe(16)


def event_id(generation: str, index: int) -> str:
    return f"{generation}.{index}"


def parse_event_id(text: str) -> tuple[str, int] | None:
    """The generation and index a ``Last-Event-ID`` names, or None for any other id."""
    generation, dot, index = text.strip().rpartition(".")
    if not dot or not generation.startswith(GENERATION_PREFIX) or not index.isdigit():
        return None
    if len(generation) > 64 or len(index) > 9:
        return None
    return generation, int(index)
