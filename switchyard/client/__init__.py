"""Typed Python clients for Switchyard's model services, sync and async.

Each client sets a deadline on every call (``timeout_s``), retries unary calls that fail
with UNAVAILABLE through gRPC's own retry policy (the service config, with backoff and
the server's pushback honoured), balances over every address a name resolves to
(round robin), and has helpers for the streaming RPCs. Given ``tls=ChannelTLS...``, its
channel is a secure one (TLS, or mTLS with a client certificate).
"""

from switchyard.client.aio import AsyncClassifierClient, AsyncNerClient, AsyncSummarizerClient
from switchyard.client.sync import ClassifierClient, NerClient, SummarizerClient
from switchyard.client.tls import ChannelTLS

__all__ = [
    "AsyncClassifierClient",
    "AsyncNerClient",
    "AsyncSummarizerClient",
    "ChannelTLS",
    "ClassifierClient",
    "NerClient",
    "SummarizerClient",
]
