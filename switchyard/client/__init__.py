"""Typed Python clients for Switchyard's model services, sync and async.

Each client sets a deadline on every call (``timeout_s``), retries unary calls that fail
with UNAVAILABLE through gRPC's own retry policy (the service config, with backoff and
the server's pushback honoured), balances over every address a name resolves to
(round robin), and has helpers for the streaming RPCs.
"""

from switchyard.client.aio import AsyncClassifierClient, AsyncNerClient, AsyncSummarizerClient
from switchyard.client.sync import ClassifierClient, NerClient, SummarizerClient

__all__ = [
    "AsyncClassifierClient",
    "AsyncNerClient",
    "AsyncSummarizerClient",
    "ClassifierClient",
    "NerClient",
    "SummarizerClient",
]
