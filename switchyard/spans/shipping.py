"""Ended spans, buffered and sent in batches by one background thread.

The same behaviour and the same ``OTEL_BSP_*`` settings as the SDK's batch span
processor: a bounded queue (spans beyond it are dropped and counted), a batch sent every
``OTEL_BSP_SCHEDULE_DELAY`` milliseconds or as soon as ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``
spans wait, and what is left sent at shutdown. A span is encoded (``otlp_wire``) as it
ends, on the thread that ends it, and only its bytes are queued: the span object is freed
at once, rather than living in the queue for seconds and being promoted to the old
generation of Python's garbage collector, which then runs full collections over the
whole heap more often (measured: in the gateway, that cost more than making the spans).
The transports are the OTLP exporters of ``opentelemetry-exporter-otlp-proto-grpc``
(``grpc_export``, which makes its calls on the process's event loop) and ``-http``,
given the encoded bytes instead of SDK spans, so their endpoint, headers, TLS,
compression, timeout and retries come from the standard ``OTEL_EXPORTER_OTLP_*``
environment as usual.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

from switchyard.spans import otlp_wire
from switchyard.spans.recording import RecordedSpan, Scope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedSpans:
    """An ``ExportTraceServiceRequest``'s bytes and how many spans it carries."""

    payload: bytes
    count: int


class Transport(Protocol):
    def send(self, batch: EncodedSpans) -> bool: ...

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None: ...

    async def leave_loop(self) -> None: ...

    def shutdown(self) -> None: ...


class HttpTransport(HttpExporter):
    """OTLP/HTTP with protobuf: the exporter's HTTP client (headers, compression, TLS,
    retries), our bytes."""

    def send(self, batch: EncodedSpans) -> bool:
        return bool(self._client.export(batch.payload).success)

    # Nothing to do on a loop: HTTP requests are sent from the sending thread.
    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    async def leave_loop(self) -> None:
        pass


def _setting(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        log.warning("ignoring %s=%r: not an integer", name, raw)
        return default
    return value if value > 0 else default


class SpanShipper:
    """The sink of a ``recording.TracerProvider``: queues ended spans, and sends them."""

    def __init__(
        self,
        transport: Transport,
        resource: Mapping[str, object],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self._transport = transport
        self._resource = otlp_wire.resource(resource)  # type: ignore[arg-type]
        self._delay_s = _setting(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._max_queue = _setting(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = min(_setting(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self._max_queue)
        self._join_s = _setting(environ, "OTEL_BSP_EXPORT_TIMEOUT", 30000) / 1000
        # deque's append and popleft are atomic: spans end on any thread without a lock.
        # One queue per scope, of bytes only, which the garbage collector does not track.
        self._queues: dict[Scope, collections.deque[bytes]] = {}
        self._new_queue = threading.Lock()
        self._waiting = 0  # approximate when several threads end spans: only a trigger
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="switchyard-spans", daemon=True)
        self._thread.start()

    def add(self, span: RecordedSpan) -> None:
        if self._waiting >= self._max_queue:
            if not self.dropped:
                log.warning("span queue full (%d): dropping spans", self._max_queue)
            self.dropped += 1
            return
        queue = self._queues.get(span.scope)
        if queue is None:
            with self._new_queue:
                queue = self._queues.setdefault(span.scope, collections.deque())
        queue.append(otlp_wire.span(span))
        self._waiting += 1
        if self._waiting >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._send_waiting()
        self._send_waiting()

    def _take(self) -> tuple[dict[Scope, list[bytes]], int]:
        """Up to a batch of the queued spans, by scope."""
        batch: dict[Scope, list[bytes]] = {}
        taken = 0
        for scope, queue in list(self._queues.items()):
            spans = batch[scope] = []
            while queue and taken < self._batch:
                spans.append(queue.popleft())
                taken += 1
        self._waiting = max(0, self._waiting - taken)
        return batch, taken

    def _send_waiting(self) -> None:
        while True:
            batch, count = self._take()
            if not count:
                return
            try:
                payload = otlp_wire.export_encoded(batch, self._resource)
                delivered = self._transport.send(EncodedSpans(payload, count))
            except Exception:  # the thread must outlive a bad batch or a broken collector
                log.exception("could not export %d spans", count)
                delivered = False
            if delivered:
                self.sent += count
            else:
                self.failed += count

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send from ``loop`` (the process's event loop, while it runs) if the transport
        can (``leave_loop``, on that loop, before it stops)."""
        self._transport.use_loop(loop)

    async def leave_loop(self) -> None:
        await self._transport.leave_loop()

    def shutdown(self) -> None:
        """Send what is queued (waiting at most ``OTEL_BSP_EXPORT_TIMEOUT``), then stop."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(self._join_s)
        self._transport.shutdown()
