"""A small OTLP trace receiver for tests: the collector's gRPC TraceService and its HTTP
``POST /v1/traces`` (protobuf), both handing every span they get to one queue."""

from __future__ import annotations

import http.server
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as collector_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as collector_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SPAN_WAIT_S = 60.0


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    """The ``service.name`` of the process that sent it."""
    span: Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def attributes(self) -> dict[str, Any]:
        return {a.key: plain(a.value) for a in self.span.attributes}


def plain(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [plain(v) for v in value.array_value.values]
    return getattr(value, which) if which else None


def _attribute(attributes: Iterator[KeyValue] | Any, key: str) -> Any:
    return next((plain(a.value) for a in attributes if a.key == key), None)


class SpanSink:
    """Every span received, in the order received."""

    def __init__(self) -> None:
        self._arrived: queue.Queue[ReceivedSpan] = queue.Queue()
        self.spans: list[ReceivedSpan] = []

    def add(self, request: collector_pb.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = _attribute(resource_spans.resource.attributes, "service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self._arrived.put(ReceivedSpan(str(service), span))

    def wait_for(
        self, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float = SPAN_WAIT_S
    ) -> list[ReceivedSpan]:
        """Block until ``done(spans)`` holds for the spans received so far (bounded)."""
        deadline = time.monotonic() + timeout_s
        while not done(self.spans):
            left = deadline - time.monotonic()
            if left <= 0:
                names = [(s.service, s.name) for s in self.spans]
                raise AssertionError(f"the awaited spans never came; got {names}")
            try:
                self.spans.append(self._arrived.get(timeout=left))
            except queue.Empty:
                continue
        return self.spans


class _TraceService(collector_grpc.TraceServiceServicer):
    def __init__(self, sink: SpanSink) -> None:
        self.sink = sink

    def Export(
        self, request: collector_pb.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> collector_pb.ExportTraceServiceResponse:
        self.sink.add(request)
        return collector_pb.ExportTraceServiceResponse()


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, SpanSink]]:
    """An OTLP/gRPC receiver on a free port: its endpoint URL and its spans."""
    sink = SpanSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    collector_grpc.add_TraceServiceServicer_to_server(_TraceService(sink), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", sink
    finally:
        server.stop(None)


@contextmanager
def http_receiver() -> Iterator[tuple[str, SpanSink]]:
    """An OTLP/HTTP (protobuf) receiver on a free port: its base URL and its spans."""
    sink = SpanSink()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces" or "protobuf" not in self.headers.get("Content-Type", ""):
                self.send_response(404)
                self.end_headers()
                return
            sink.add(collector_pb.ExportTraceServiceRequest.FromString(body))
            reply = collector_pb.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
