"""OTLP/gRPC span export: the OpenTelemetry exporter's settings, retries and back-off,
sending bytes already encoded, and made on the process's event loop while it runs.

Switchyard's processes serve on gRPC's asyncio stack (the gateway calls its backends
with ``grpc.aio``; the services are ``grpc.aio`` servers). Measured in the gateway at
concurrency 32, per thread from ``/proc``: the exporter's blocking call, made from the
sending thread, cost that thread about 0.044 ms of CPU per request (15 µs per span, some
twenty times what the same export costs in a process without ``grpc.aio``), against
0.002 ms when the thread only formed the batches; made on the event loop with
``grpc.aio`` instead, the export left the thread at 0.002 ms and cost the loop nothing
measurable. So once ``use_loop`` names the loop, each export is a ``grpc.aio`` call made
there, which the sending thread waits for; that thread still forms the batches and runs
the exporter's retries and back-off. Before the loop runs and after it stops (the last
spans, sent at shutdown), the exporter's own blocking channel sends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

import grpc
from grpc import aio
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from switchyard.spans.shipping import EncodedSpans

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

Metadata = tuple[tuple[str, str], ...]


class _BlockingExport:
    """The generated ``TraceServiceStub``'s one method on a blocking channel, sending bytes
    already encoded as they are (no request serializer) rather than a message object."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class _LoopExport:
    """The same method, called from the sending thread and made on ``loop`` with
    ``grpc.aio``. Its channel is made on the loop, the first time (a ``grpc.aio`` channel
    belongs to the loop it was made on)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: GrpcTransport) -> None:
        self.loop = loop
        self._transport = transport
        self._channel: aio.Channel | None = None
        self._call: aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse] | None = None

    async def _export(
        self, request: bytes, metadata: Metadata, deadline_s: float
    ) -> ExportTraceServiceResponse:
        if self._call is None:
            self._channel = self._transport.loop_channel()
            self._call = self._channel.unary_unary(
                EXPORT_METHOD,
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
        response: ExportTraceServiceResponse = await self._call(
            request, metadata=metadata, timeout=deadline_s
        )
        return response

    def Export(
        self, request: bytes, metadata: Metadata, timeout: float
    ) -> ExportTraceServiceResponse:
        """Raises the call's ``grpc.RpcError`` as the blocking stub would, for the
        exporter's retries; a loop that closed or stopped meanwhile leaves the call to
        the blocking channel."""
        future: concurrent.futures.Future[ExportTraceServiceResponse] | None = None
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._export(request, metadata, timeout), self.loop
            )
            return future.result(timeout + 1.0)
        except (RuntimeError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            # The loop closed, or stopped with the call pending: send without it (and
            # never twice, should the loop run again).
            if future is not None:
                future.cancel()
            response: ExportTraceServiceResponse = self._transport.blocking.Export(
                request=request, metadata=metadata, timeout=timeout
            )
            return response

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)


class GrpcTransport(OTLPSpanExporter):
    """OTLP/gRPC: the exporter's endpoint, TLS, headers, compression, deadline and
    retries (all from the ``OTEL_EXPORTER_OTLP_*`` environment), our bytes."""

    _on_loop: _LoopExport | None = None
    blocking: _BlockingExport

    # The exporter's generic ``_export`` makes its stub from the channel (again on each
    # reconnection), asks ``_translate_data`` for the request and ``_count_data`` for its
    # size: given EncodedSpans rather than SDK spans, the request is our bytes, sent as
    # they are (parsing them into a message only to serialize it again was measured at
    # as much per span as encoding the batch).
    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        assert self._channel is not None  # the call above made it
        self.blocking = _BlockingExport(self._channel)
        self._client = self.blocking

    def loop_channel(self) -> aio.Channel:
        """A ``grpc.aio`` channel with the exporter's settings (on the running loop)."""
        if self._insecure:
            return aio.insecure_channel(
                self._endpoint, options=self._channel_options, compression=self._compression
            )
        assert self._credentials is not None  # the exporter's constructor checks it
        return aio.secure_channel(
            self._endpoint,
            self._credentials,
            options=self._channel_options,
            compression=self._compression,
        )

    def _translate_data(self, data: EncodedSpans) -> bytes:  # type: ignore[override]
        return data.payload

    def _count_data(self, data: EncodedSpans) -> int:  # type: ignore[override]
        return data.count

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._on_loop = _LoopExport(loop, self)

    async def leave_loop(self) -> None:
        """Exports go back to the sending thread; the loop's channel is closed (on it)."""
        left, self._on_loop = self._on_loop, None
        if left is not None:
            await left.close()

    def send(self, batch: EncodedSpans) -> bool:
        on_loop = self._on_loop
        if on_loop is not None and on_loop.loop.is_running():
            self._client = on_loop  # type: ignore[assignment]
        else:
            self._client = self.blocking  # type: ignore[assignment]
        return bool(self._export(batch) is SpanExportResult.SUCCESS)  # type: ignore[arg-type]
