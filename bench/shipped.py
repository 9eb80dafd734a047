"""What the shipped model registry says about the classifier's and summarizer's versions."""

from __future__ import annotations

from services.runtime.registry import VersionSpec, load_registry
from services.runtime.settings import DEFAULT_REGISTRY

EAGER, INT8 = "v1", "v1-int8"
LOOKUP = "v1-lookup"
"""The summarizer version that decodes with prompt lookup."""


def sentiment_versions() -> dict[str, VersionSpec]:
    return load_registry(DEFAULT_REGISTRY, "classifier").models["sentiment"].versions


def summarizer_versions() -> dict[str, VersionSpec]:
    return load_registry(DEFAULT_REGISTRY, "summarizer").models["summarizer"].versions


def lookup_tokens() -> int:
    """The drafts per step of the shipped prompt lookup version."""
    return summarizer_versions()[LOOKUP].prompt_lookup_tokens


def shipped_batching(version: str = EAGER) -> dict[str, object]:
    """The batch settings a shipped sentiment version has, queue deep enough for the load."""
    spec = sentiment_versions()[version]
    return {
        "max_batch_size": spec.max_batch_size,
        "max_queue_delay_ms": spec.max_queue_delay_ms,
        "max_queue_size": 512,
    }
