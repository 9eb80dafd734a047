"""Checks on texts, and a call's deadline and priority, that every service reads the same
way."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from grpc import aio

from services.runtime.errors import InvalidInput
from switchyard.client.config import LOW_PRIORITY, PRIORITY_KEY


def check_text(text: str, max_chars: int, where: str = "text") -> str:
    """Refuse an empty or whitespace-only text, or one longer than ``max_chars`` code points."""
    if not text.strip():
        raise InvalidInput(f"{where} is empty; send at least one non-space character")
    if len(text) > max_chars:
        raise InvalidInput(
            f"{where} has {len(text)} characters; the limit is {max_chars} (max_input_chars)"
        )
    return text


def check_texts(texts: Sequence[str], max_chars: int, max_texts: int) -> list[str]:
    """Check every text of a batch request and the batch's size."""
    if not texts:
        raise InvalidInput("texts is empty; send at least one text")
    if len(texts) > max_texts:
        raise InvalidInput(
            f"{len(texts)} texts in one request; the limit is {max_texts} (max_texts_per_request)"
        )
    return [check_text(t, max_chars, f"texts[{i}]") for i, t in enumerate(texts)]


def deadline_of(context: aio.ServicerContext[Any, Any]) -> float | None:
    """The call's deadline as a ``time.monotonic()`` instant, or None when it has none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def is_low_priority(context: aio.ServicerContext[Any, Any]) -> bool:
    """Whether the call is a batch job's (``x-switchyard-priority: low`` metadata): its
    items run only when no interactive item waits. Anything else is interactive."""
    for key, value in context.invocation_metadata() or ():
        if key == PRIORITY_KEY:
            return isinstance(value, str) and value.strip().lower() == LOW_PRIORITY
    return False
