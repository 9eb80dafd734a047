"""The OTLP/gRPC transport (``switchyard.spans.grpc_export``) against a real receiver:
made on a running event loop once it is given one, from the sending thread before that
and after the loop stops, with the spans arriving either way."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from switchyard.processes import free_port
from switchyard.spans import otlp_wire
from switchyard.spans.grpc_export import GrpcTransport
from switchyard.spans.recording import RecordedSpan, TracerProvider
from switchyard.spans.sampling import SpanSampler
from switchyard.spans.shipping import EncodedSpans
from tests.otlp_receiver import SpanSink, grpc_receiver

pytestmark = pytest.mark.timeout(120)


def encoded(*names: str) -> EncodedSpans:
    ended: list[RecordedSpan] = []
    tracer = TracerProvider(
        SpanSampler.from_environment({}), RandomIdGenerator(), ended.append
    ).get_tracer("t")
    for name in names:
        tracer.start_span(name).end()
    resource = otlp_wire.resource({"service.name": "switchyard-test"})
    return EncodedSpans(otlp_wire.export_request(ended, resource), len(ended))


@pytest.fixture
def exporting() -> Iterator[tuple[GrpcTransport, SpanSink]]:
    """A transport exporting to a test receiver, and what the receiver got."""
    with grpc_receiver() as (endpoint, sink), pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        exporter = GrpcTransport()
        try:
            yield exporter, sink
        finally:
            exporter.shutdown()


def names(sink: SpanSink, count: int) -> list[str]:
    """The names of the first ``count`` spans received (waiting for them, bounded)."""
    return [span.name for span in sink.wait_for(lambda spans: len(spans) >= count)]


class LoopThread:
    """An event loop running in a thread of its own, as a server's loop would."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._running.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._running.set)
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def test_exports_run_on_the_loop_it_is_given_and_without_it_before_and_after(
    exporting: tuple[GrpcTransport, SpanSink],
) -> None:
    exporter, sink = exporting
    assert exporter.send(encoded("before the loop"))
    assert names(sink, 1) == ["before the loop"]

    serving = LoopThread()
    exporter.use_loop(serving.loop)
    assert exporter.send(encoded("on the loop", "and another"))
    assert names(sink, 3)[1:] == ["on the loop", "and another"]
    assert exporter._on_loop is not None and exporter._on_loop._channel is not None

    asyncio.run_coroutine_threadsafe(exporter.leave_loop(), serving.loop).result(30)
    assert exporter._on_loop is None
    assert exporter.send(encoded("after leaving the loop"))
    assert names(sink, 4)[-1] == "after leaving the loop"

    exporter.use_loop(serving.loop)
    serving.stop()  # stopped without leaving: the sending thread sends alone
    serving.loop.close()
    assert exporter.send(encoded("after the loop stopped"))
    assert names(sink, 5)[-1] == "after the loop stopped"


def test_an_export_the_collector_refuses_is_reported_failed_from_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A collector that is not there: the loop's call fails, the exporter's retries end
    (a short timeout bounds them), and the batch is counted as not delivered."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    exporter = GrpcTransport()
    serving = LoopThread()
    try:
        exporter.use_loop(serving.loop)
        assert not exporter.send(encoded("nowhere to go"))
    finally:
        asyncio.run_coroutine_threadsafe(exporter.leave_loop(), serving.loop).result(30)
        serving.stop()
        serving.loop.close()
        exporter.shutdown()
