"""Switchyard's own spans (``switchyard.spans``): what they record, the OTLP bytes they
become (parsed with the generated protobuf classes, and equal to what OpenTelemetry's
own encoder makes of the same spans), and the buffer that sends them."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from switchyard.spans import otlp_wire
from switchyard.spans.recording import RecordedSpan, TracerProvider
from switchyard.spans.sampling import SpanSampler
from switchyard.spans.shipping import EncodedSpans, SpanShipper

RESOURCE = {"service.name": "switchyard-test", "deployment.environment": "ci"}
REMOTE_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Recorded(list[RecordedSpan]):
    """A sink keeping every ended span."""

    def add(self, span: RecordedSpan) -> None:
        self.append(span)


def provider(sink: Recorded, **environ: str) -> TracerProvider:
    sampler = SpanSampler.from_environment(environ)
    return TracerProvider(sampler, RandomIdGenerator(), sink.add)


def shipped_to(shipper: SpanShipper) -> TracerProvider:
    return TracerProvider(SpanSampler.from_environment({}), RandomIdGenerator(), shipper.add)


def as_sdk_span(span: RecordedSpan) -> ReadableSpan:
    """The same span as the SDK would have recorded it."""
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=Resource(RESOURCE),
        attributes=span.attributes,
        events=[SdkEvent(e.name, e.attributes, e.time_ns) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=Status(span.status_code, span.status_message),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=InstrumentationScope(
            span.scope.name, span.scope.version, span.scope.schema_url
        ),
    )


def made_spans() -> Recorded:
    """A request span continuing a remote parent, a client span under it with every kind
    of attribute value, a failed span with an exception and a link, in two scopes."""
    sink = Recorded()
    tracers = provider(sink)
    edge = tracers.get_tracer("switchyard.gateway")
    redis = tracers.get_tracer("opentelemetry.instrumentation.redis", "0.66b2", "https://x/1")
    remote = propagate.extract({"traceparent": REMOTE_PARENT, "tracestate": "vendor=abc,other=1"})
    with edge.start_as_current_span("POST", context=remote, kind=SpanKind.SERVER) as request:
        request.update_name("POST /v1/classify")
        request.set_attributes({"http.route": "/v1/classify", "http.response.status_code": 200})
        with redis.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT) as call:
            call.set_attributes(
                {
                    "db.system": "redis",
                    "net.peer.port": 6379,
                    "negative": -42,
                    "ratio": 0.25,
                    "flag": True,
                    "labels": ["POSITIVE", "NEGATIVE"],
                    "sizes": (1, 2, 3),
                    "text": "naïve ✓",
                }
            )
        link = Link(call.get_span_context())
        with pytest.raises(ValueError), edge.start_as_current_span("forward", links=[link]):
            raise ValueError("shape mismatch")
        request.add_event("answered", {"cached": False})
        request.set_status(Status(StatusCode.OK))
    return sink


def test_what_a_span_records() -> None:
    sink = made_spans()
    call, forward, request = sink
    assert [s.name for s in sink] == ["EVALSHA", "forward", "POST /v1/classify"]
    assert request.parent is not None and request.parent.is_remote
    assert f"{request.get_span_context().trace_id:032x}" == REMOTE_PARENT.split("-")[1]
    assert call.parent == request.get_span_context() == forward.parent
    assert forward.status_code is StatusCode.ERROR
    assert forward.status_message == "ValueError: shape mismatch"
    assert forward.events[0].name == "exception"
    assert forward.events[0].attributes["exception.type"] == "ValueError"
    assert request.status_code is StatusCode.OK
    request.set_status(Status(StatusCode.ERROR, "late"))  # OK is final, and it has ended
    request.set_attribute("after", "end")
    assert request.status_code is StatusCode.OK and "after" not in request.attributes


def test_the_wire_format_is_what_opentelemetry_encodes() -> None:
    sink = made_spans()
    ours = ExportTraceServiceRequest.FromString(
        otlp_wire.export_request(sink, otlp_wire.resource(RESOURCE))
    )
    sdk = encode_spans([as_sdk_span(span) for span in sink])
    assert len(ours.resource_spans[0].scope_spans) == 2
    # A link carries its trace state, as trace.proto allows; the SDK's encoder leaves it
    # out (it is the only difference).
    scopes = ours.resource_spans[0].scope_spans
    (forward,) = [s for scope in scopes for s in scope.spans if s.name == "forward"]
    assert forward.links[0].trace_state == "vendor=abc,other=1"
    forward.links[0].ClearField("trace_state")
    assert ours == sdk


def test_unsupported_attribute_values_are_dropped() -> None:
    sink = Recorded()
    with provider(sink).get_tracer("t").start_as_current_span("s") as span:
        span.set_attributes({"kept": "yes", "none": None, "mixed": [1, None], "map": {}})
    (encoded,) = (
        ExportTraceServiceRequest.FromString(otlp_wire.export_request(sink, b""))
        .resource_spans[0]
        .scope_spans[0]
        .spans
    )
    assert [pair.key for pair in encoded.attributes] == ["kept"]


def test_equal_attribute_values_of_different_types_stay_apart() -> None:
    """``1``, ``True`` and ``1.0`` are equal as dict keys: the encoder's cache of whole
    attribute sets must not hand one's bytes to another."""
    sink = Recorded()
    tracer = provider(sink).get_tracer("t")
    for value in (1, True, 1.0, 1, (1, 2), (True, 2)):
        tracer.start_span("s", attributes={"x": value}).end()
    spans = (
        ExportTraceServiceRequest.FromString(otlp_wire.export_request(sink, b""))
        .resource_spans[0]
        .scope_spans[0]
        .spans
    )
    kinds = [span.attributes[0].value.WhichOneof("value") for span in spans]
    assert kinds == ["int_value", "bool_value", "double_value", "int_value"] + ["array_value"] * 2
    items = [
        [v.WhichOneof("value") for v in s.attributes[0].value.array_value.values] for s in spans[4:]
    ]
    assert items == [["int_value", "int_value"], ["bool_value", "int_value"]]


def test_the_default_sampler_follows_the_parent_and_drops_orphan_client_calls() -> None:
    sink = Recorded()
    tracer = provider(sink).get_tracer("t")
    tracer.start_span("background GET", kind=SpanKind.CLIENT).end()  # no parent: dropped
    unsampled = propagate.extract({"traceparent": REMOTE_PARENT[:-2] + "00"})
    span = tracer.start_span("unsampled caller", context=unsampled, kind=SpanKind.SERVER)
    assert not span.is_recording() and not span.get_span_context().trace_flags.sampled
    with trace.use_span(span, end_on_exit=True):
        tracer.start_span("under an unsampled parent", kind=SpanKind.CLIENT).end()
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER):
        tracer.start_span("GET", kind=SpanKind.CLIENT).end()
    assert [s.name for s in sink] == ["GET", "request"]


@pytest.mark.parametrize(
    ("environ", "roots", "under_unsampled"),
    [
        ({"OTEL_TRACES_SAMPLER": "always_off"}, 0, 0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, 0, 0),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, 50, 1),  # ignores the parent's flag
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, 0, 0),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"},
            50,
            0,
        ),
        ({"OTEL_TRACES_SAMPLER": "no_such_sampler"}, 50, 0),  # the default, with a warning
    ],
)
def test_the_samplers_of_the_environment(
    environ: dict[str, str], roots: int, under_unsampled: int
) -> None:
    sink = Recorded()
    tracer = provider(sink, **environ).get_tracer("t")
    for _ in range(50):
        tracer.start_span("root", kind=SpanKind.SERVER).end()
    unsampled = propagate.extract({"traceparent": REMOTE_PARENT[:-2] + "00"})
    tracer.start_span("child", context=unsampled).end()
    assert sum(s.name == "root" for s in sink) == roots
    assert sum(s.name == "child" for s in sink) == under_unsampled


def test_a_ratio_sampler_keeps_about_its_share() -> None:
    sink = Recorded()
    environ = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    tracer = provider(sink, **environ).get_tracer("t")
    for _ in range(4000):
        tracer.start_span("root").end()
    assert 700 < len(sink) < 1300  # 1000 expected; random ids, but far from either edge


class Transport:
    """Records the batches it is given; can be told to fail them, and to hold each send
    until ``release`` is set."""

    def __init__(self, fail: bool = False, release: threading.Event | None = None) -> None:
        self.batches: list[ExportTraceServiceRequest] = []
        self.fail = fail
        self.release = release
        self.sent = threading.Event()
        self.closed = False

    def send(self, batch: EncodedSpans) -> bool:
        request = ExportTraceServiceRequest.FromString(batch.payload)
        assert batch.count == sum(len(s.spans) for s in request.resource_spans[0].scope_spans)
        self.batches.append(request)
        self.sent.set()
        if self.release is not None:
            assert self.release.wait(60), "the test never released the send"
        return not self.fail

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        pass  # sent from the shipper's thread

    async def leave_loop(self) -> None:
        pass

    def shutdown(self) -> None:
        self.closed = True


def test_the_shipper_sends_full_batches_at_once_and_the_rest_at_shutdown() -> None:
    transport = Transport()
    environ = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4"}
    shipper = SpanShipper(transport, RESOURCE, environ)
    tracer = shipped_to(shipper).get_tracer("t")
    for number in range(4):
        tracer.start_span(f"s{number}").end()
    assert transport.sent.wait(60), "a full batch waits for the schedule"
    tracer.start_span("s4").end()
    shipper.shutdown()
    names = [s.name for b in transport.batches for s in b.resource_spans[0].scope_spans[0].spans]
    assert names == ["s0", "s1", "s2", "s3", "s4"]
    assert shipper.sent == 5 and transport.closed
    resource = {
        a.key: a.value.string_value
        for a in transport.batches[0].resource_spans[0].resource.attributes
    }
    assert resource == RESOURCE


def test_the_shipper_drops_beyond_its_queue_and_counts_failures() -> None:
    release = threading.Event()
    transport = Transport(fail=True, release=release)
    environ = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_MAX_QUEUE_SIZE": "3"}
    shipper = SpanShipper(transport, RESOURCE, environ)
    tracer = shipped_to(shipper).get_tracer("t")
    # A full queue is a full batch (a batch is at most the queue): the sending thread takes
    # it and is held inside send, so nothing drains the queue while it fills again.
    for number in range(3):
        tracer.start_span(f"first{number}").end()
    assert transport.sent.wait(60), "a full batch waits for the schedule"
    for number in range(5):
        tracer.start_span(f"s{number}").end()
    assert shipper.dropped == 2
    release.set()
    shipper.shutdown()
    assert shipper.failed == 6 and shipper.sent == 0


def test_the_global_api_reaches_these_spans() -> None:
    """What instrumentation packages do: ``trace.get_tracer`` on the installed provider."""
    sink = Recorded()
    tracer = trace.get_tracer("pkg", tracer_provider=provider(sink))
    with tracer.start_as_current_span("outer"):
        assert trace.get_current_span().is_recording()
    assert [s.name for s in sink] == ["outer"]
