"""Channel settings the clients share: the retry policy and load balancing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from switchyard.service_table import FULL_NAMES, model_service

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_STREAM_TIMEOUT_S = 300.0

RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
"""Trailing-metadata key of gRPC's retry pushback: how long a client should wait."""

PRIORITY_KEY = "x-switchyard-priority"
"""Metadata key of a call's priority: ``LOW_PRIORITY`` for a batch job's call, whose items
the model services run only when no interactive item waits; absent (or any other value)
for an interactive call."""
LOW_PRIORITY = "low"

# The proto services' full names, from the service table.
CLASSIFIER = FULL_NAMES["classifier"]
NER = FULL_NAMES["ner"]
SUMMARIZER = FULL_NAMES["summarizer"]

# Where each client connects when given no address: the service's default port here.
DEFAULT_TARGETS = {name: f"localhost:{model_service(name).default_port}" for name in FULL_NAMES}

# Unary calls only: a stream that failed half way cannot be replayed safely.
UNARY_METHODS: dict[str, tuple[str, ...]] = {
    CLASSIFIER: ("Classify", "ListModels"),
    NER: ("ExtractEntities", "ListModels"),
    SUMMARIZER: ("Summarize", "ListModels"),
}


def service_config(service: str, max_attempts: int = 4) -> str:
    """gRPC service config: retry UNAVAILABLE on unary calls, round robin over addresses."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": service, "method": m} for m in UNARY_METHODS[service]],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def channel_options(service: str) -> Sequence[tuple[str, object]]:
    return (
        ("grpc.service_config", service_config(service)),
        ("grpc.enable_retries", 1),
        # Notice a dead peer on an idle long-lived connection.
        ("grpc.keepalive_time_ms", 30_000),
        # A restarted replica is reached within seconds: gRPC's reconnect backoff would
        # otherwise grow to two minutes while it was away.
        ("grpc.max_reconnect_backoff_ms", 2_000),
    )
