"""OpenTelemetry traces: off unless the OTEL_* environment asks, and then one trace from
the gateway's request span to the model service's forward pass, exported over OTLP (gRPC
and HTTP/protobuf) to a real receiver, from real processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry import trace

from gateway.access.keys import key_id_of
from gateway.edge.tracing import trace_context
from switchyard import telemetry
from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.local_children import gateway_spec, service_child
from switchyard.redis_server import LocalRedis
from switchyard.service_table import SERVICES
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc
from tests.conftest import STANDARD_BATCHING, make_key
from tests.otlp_receiver import ReceivedSpan, SpanSink, grpc_receiver, http_receiver, plain
from tests.support import GatewayProcess, classifier_process, gateway_process, service_process

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
RPC = "switchyard.classifier.v1.ClassifierService/Classify"


def otel_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, protocol: str) -> None:
    """Traces on, for the processes started from now on (they inherit this environment),
    exported every 50 ms rather than every 5 s."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)


@dataclass(frozen=True)
class Traced:
    gateway: GatewayProcess
    sink: SpanSink
    key: str
    """A client key the gateway knows."""
    classifier: str
    """The traced classifier's address."""


@pytest.fixture(scope="module")
def traced(
    prepared_models: Path, redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traced]:
    """A gateway and a classifier exporting to one OTLP/gRPC receiver, and a client key."""
    key = make_key(redis_server.url, "client", "enterprise")
    with grpc_receiver() as (endpoint, sink), pytest.MonkeyPatch.context() as monkeypatch:
        otel_env(monkeypatch, endpoint, telemetry.GRPC)
        tmp = tmp_path_factory.mktemp("traced")
        with (
            classifier_process(tmp, {"v1": STANDARD_BATCHING}) as classifier,
            gateway_process(
                {"classifier": classifier.address, "ner": "", "summarizer": ""},
                redis_url=redis_server.url,
                cache_ttl_s="0",
            ) as gateway,
        ):
            yield Traced(gateway, sink, key, classifier.address)


def one_trace(spans: list[ReceivedSpan], trace_id: str) -> dict[str, list[ReceivedSpan]]:
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        if span.trace_id == trace_id:
            by_name.setdefault(span.name, []).append(span)
    return by_name


def complete(spans: list[ReceivedSpan]) -> bool:
    names = one_trace(spans, CALLER_TRACE)
    callers = {s.service for s in names.get(RPC, [])}  # the gateway's call, the service's
    return (
        all(name in names for name in ("POST /v1/classify", "queue wait", "batch", "forward"))
        and callers == {"switchyard-gateway", "switchyard-classifier"}
        and any(
            s.attributes.get("db.system.name") == "redis" for named in names.values() for s in named
        )
    )


@pytest.mark.timeout(240)
def test_one_trace_runs_from_the_gateway_to_the_forward_pass(
    traced: Traced,
) -> None:
    gateway, sink, key = traced.gateway, traced.sink, traced.key
    reply = httpx.post(
        f"{gateway.url}/v1/classify",
        json={"texts": ["a fine day", "a dreadful day"]},
        headers={
            "Authorization": f"Bearer {key}",
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    spans = one_trace(sink.wait_for(complete), CALLER_TRACE)

    (request,) = spans["POST /v1/classify"]
    assert request.service == "switchyard-gateway"
    assert request.parent_id == CALLER_SPAN  # the caller's trace goes on
    attributes = request.attributes
    assert attributes["http.route"] == "/v1/classify"
    assert attributes["http.response.status_code"] == 200
    assert attributes["switchyard.model.version"] == reply.headers["x-model-version"]
    assert attributes["switchyard.route.reason"]
    assert attributes["switchyard.model"]

    # The key check, the counting and the cache read: a script's Redis call under the
    # request (more than one when the server had lost the script and was sent it again).
    scripts = spans["EVALSHA"]
    assert scripts and all(s.parent_id == request.span_id for s in scripts)
    assert all(s.span.kind == s.span.SPAN_KIND_CLIENT for s in scripts)
    assert all(s.attributes["db.system.name"] == "redis" for s in scripts)

    (call,) = [s for s in spans[RPC] if s.service == "switchyard-gateway"]
    assert call.parent_id == request.span_id
    assert call.span.kind == call.span.SPAN_KIND_CLIENT
    assert call.attributes["rpc.system"] == "grpc"
    assert call.attributes["rpc.method"] == "Classify"
    assert call.attributes["rpc.grpc.status_code"] == "OK"
    assert f"{call.attributes['server.address']}:{call.attributes['server.port']}" == (
        traced.classifier
    )
    (rpc,) = [s for s in spans[RPC] if s.service == "switchyard-classifier"]
    assert rpc.parent_id == call.span_id  # the backend continued the gateway's call
    assert rpc.attributes["rpc.grpc.status_code"] == "OK"
    waits, batches, forwards = spans["queue wait"], spans["batch"], spans["forward"]
    assert waits and batches and forwards
    assert all(s.parent_id == rpc.span_id for s in waits + batches)
    assert {s.parent_id for s in forwards} <= {b.span_id for b in batches}
    assert all(b.attributes["switchyard.batch.size"] >= 1 for b in batches)
    for batch in batches:
        (forward,) = [f for f in forwards if f.parent_id == batch.span_id]
        assert batch.span.start_time_unix_nano <= forward.span.start_time_unix_nano
        assert forward.span.end_time_unix_nano <= batch.span.end_time_unix_nano


@pytest.mark.timeout(240)
def test_a_request_that_shared_another_requests_call_links_its_trace_to_that_call(
    traced: Traced,
) -> None:
    """Concurrent requests share backend calls: the service's spans of a shared call are
    in the trace of the request whose call it is, and the gateway's client span of every
    other request in it links to that request's client span."""
    trace_ids = [f"{n:02x}" * 16 for n in range(1, 13)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=60) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/v1/classify",
                        json={"texts": [f"text {n} of a traced burst"]},
                        headers={
                            "Authorization": f"Bearer {traced.key}",
                            "traceparent": f"00-{trace_id}-{CALLER_SPAN}-01",
                        },
                    )
                    for n, trace_id in enumerate(trace_ids)
                )
            )

    replies = asyncio.run(send_all())
    assert all(reply.status_code == 200 for reply in replies), [r.text for r in replies]

    def client_of(spans: list[ReceivedSpan], trace_id: str) -> ReceivedSpan | None:
        calls = one_trace(spans, trace_id).get(RPC, [])
        return next((s for s in calls if s.service == "switchyard-gateway"), None)

    def served(spans: list[ReceivedSpan], client: ReceivedSpan) -> bool:
        """The service continued ``client``'s call, and its forward pass was recorded."""
        names = one_trace(spans, client.trace_id)
        return "forward" in names and any(
            s.service == "switchyard-classifier" and s.parent_id == client.span_id
            for s in names.get(RPC, [])
        )

    def carrier(spans: list[ReceivedSpan], client: ReceivedSpan) -> ReceivedSpan | None:
        """The client span of the call that carried ``client``'s request."""
        if served(spans, client):
            return client
        linked = {(link.trace_id.hex(), link.span_id.hex()) for link in client.span.links}
        return next(
            (
                s
                for s in spans
                if (s.trace_id, s.span_id) in linked
                and s.service == "switchyard-gateway"
                and served(spans, s)
            ),
            None,
        )

    def all_carried(spans: list[ReceivedSpan]) -> bool:
        clients = [client_of(spans, t) for t in trace_ids]
        return all(c is not None and carrier(spans, c) is not None for c in clients)

    spans = traced.sink.wait_for(all_carried)
    clients = [client_of(spans, t) for t in trace_ids]
    for client in clients:
        assert client is not None
        if not served(spans, client):  # its request shared another's call
            (link,) = client.span.links
            assert plain(link.attributes[0].value) is True


@pytest.mark.timeout(240)
def test_the_caller_is_named_by_a_hash_never_by_its_key(
    traced: Traced,
) -> None:
    gateway, sink, key = traced.gateway, traced.sink, traced.key
    trace_id = "5c0ffee5c0ffee5c0ffee5c0ffee5c0f"
    reply = httpx.post(
        f"{gateway.url}/v1/classify",
        json={"text": "hashed callers"},
        headers={
            "Authorization": f"Bearer {key}",
            "traceparent": f"00-{trace_id}-{CALLER_SPAN}-01",
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    spans = sink.wait_for(lambda got: {RPC, "POST /v1/classify"} <= one_trace(got, trace_id).keys())
    (request,) = one_trace(spans, trace_id)["POST /v1/classify"]
    key_id = key_id_of(key)
    assert key_id is not None
    assert request.attributes["switchyard.caller.hash"] == telemetry.hashed_identity(
        f"key:{key_id}"
    )
    for span in spans:
        for value in span.attributes.values():
            assert key not in str(value) and key_id not in str(value), (span.name, value)


@pytest.mark.timeout(240)
def test_http_protobuf_export_and_a_service_name_from_the_environment(
    redis_server: LocalRedis,
) -> None:
    with http_receiver() as (endpoint, sink), pytest.MonkeyPatch.context() as monkeypatch:
        otel_env(monkeypatch, endpoint, telemetry.HTTP_PROTOBUF)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-under-test")
        with gateway_process(
            {"classifier": "", "ner": "", "summarizer": ""}, redis_url=redis_server.url
        ) as gateway:
            assert httpx.get(f"{gateway.url}/healthz", timeout=30).status_code == 200
            spans = sink.wait_for(lambda spans: any(s.name == "GET /healthz" for s in spans))
    (health,) = [s for s in spans if s.name == "GET /healthz"]
    assert health.service == "edge-under-test"
    assert health.attributes["http.response.status_code"] == 200


def test_traces_are_off_unless_the_environment_asks() -> None:
    assert not telemetry.requested({})
    assert not telemetry.requested({"OTEL_TRACES_EXPORTER": "console"})
    assert telemetry.requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert telemetry.requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert telemetry.requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not telemetry.requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "true"}
    )
    assert not telemetry.requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}
    )
    # Off: nothing is set up, and the global provider stays OpenTelemetry's proxy.
    assert not telemetry.setup("switchyard-gateway", {})
    assert not telemetry.ENABLED
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    # ... and the gateway forwards the caller's trace context as it always did.
    forwarded = trace_context(None, f"00-{CALLER_TRACE}-{CALLER_SPAN}-01").traceparent
    version, trace_id, span_id, flags = forwarded.split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE, "01") and span_id != CALLER_SPAN


def test_protocols_other_than_grpc_and_http_protobuf_are_refused() -> None:
    assert telemetry.protocol({}) == telemetry.GRPC
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert telemetry.protocol(
        environ | {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    ) == (telemetry.HTTP_PROTOBUF)
    with pytest.raises(ValueError, match="http/json"):
        telemetry.protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


@pytest.mark.parametrize("service", ["gateway", "classifier", "ner", "summarizer"])
def test_each_process_names_itself_unless_the_environment_does(service: str) -> None:
    default = f"switchyard-{service}"
    assert telemetry.service_name(default, {}) == default
    assert telemetry.service_name(default, {"OTEL_SERVICE_NAME": "edge"}) == "edge"
    attributes = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=edge-2"}
    assert telemetry.service_name(default, attributes) == "edge-2"
    assert telemetry.service_name(default, attributes | {"OTEL_SERVICE_NAME": "edge"}) == "edge"


def test_switchyard_up_hands_the_otel_environment_to_every_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    wanted = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    services = [service_child(launch, 1) for launch in SERVICES]
    for child in [s.spec for s in services] + [gateway_spec(services, None, None)]:
        assert telemetry.passed_environment(child.env).items() >= wanted.items(), child.name


@pytest.mark.timeout(300)
def test_a_generation_span_carries_the_genai_figures_and_holds_the_forward_pass(
    prepared_models: Path,
) -> None:
    trace_id = "0ddba11c0ddba11c0ddba11c0ddba11c"
    rpc_name = "switchyard.summarizer.v1.SummarizerService/SummarizeStream"
    with grpc_receiver() as (endpoint, sink), pytest.MonkeyPatch.context() as monkeypatch:
        otel_env(monkeypatch, endpoint, telemetry.GRPC)
        with (
            service_process("summarizer") as summarizer,
            grpc.insecure_channel(summarizer.address) as channel,
        ):
            stub = summarizer_pb2_grpc.SummarizerServiceStub(channel)
            request = summarizer_pb2.SummarizeStreamRequest(
                text="The tower is 330 metres tall and was the tallest structure for 41 years.",
                options=summarizer_pb2.GenerationOptions(max_new_tokens=4),
            )
            metadata = (("traceparent", f"00-{trace_id}-{CALLER_SPAN}-01"),)
            replies = list(stub.SummarizeStream(request, timeout=120, metadata=metadata))
            assert replies and replies[-1].generated_tokens > 0

            def generation_done(spans: list[ReceivedSpan]) -> bool:
                names = one_trace(spans, trace_id)
                return rpc_name in names and any(n.startswith("text_completion ") for n in names)

            spans = one_trace(sink.wait_for(generation_done), trace_id)
    (rpc,) = spans[rpc_name]
    assert rpc.service == "switchyard-summarizer" and rpc.parent_id == CALLER_SPAN
    (generation,) = [s for name, named in spans.items() if name.startswith("text_") for s in named]
    assert generation.parent_id == rpc.span_id
    figures = generation.attributes
    assert figures["gen_ai.operation.name"] == "text_completion"
    assert figures["gen_ai.request.model"] == replies[0].model
    assert figures["gen_ai.request.max_tokens"] == 4
    assert figures["gen_ai.usage.output_tokens"] == replies[-1].generated_tokens
    assert figures["gen_ai.usage.input_tokens"] > 0
    assert figures["switchyard.time_to_first_token_s"] > 0
    (wait,), (batch,), (forward,) = spans["queue wait"], spans["batch"], spans["forward"]
    assert wait.parent_id == batch.parent_id == generation.span_id
    assert forward.parent_id == batch.span_id
    assert batch.attributes["switchyard.batch.size"] == 1


@pytest.mark.timeout(240)
def test_a_streaming_rpc_continues_the_trace_item_by_item(
    traced: Traced,
) -> None:
    sink = traced.sink
    trace_id = "5eed5eed5eed5eed5eed5eed5eed5eed"
    rpc_name = "switchyard.classifier.v1.ClassifierService/ClassifyStream"
    texts = ["one fine text", "one dreadful text", "one plain text"]
    with grpc.insecure_channel(traced.classifier) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        requests = iter(
            classifier_pb2.ClassifyStreamRequest(id=str(n), text=t) for n, t in enumerate(texts)
        )
        metadata = (("traceparent", f"00-{trace_id}-{CALLER_SPAN}-01"),)
        answers = list(stub.ClassifyStream(requests, timeout=60, metadata=metadata))
    assert sorted(a.id for a in answers) == ["0", "1", "2"]

    def streamed(spans: list[ReceivedSpan]) -> bool:
        names = one_trace(spans, trace_id)
        return rpc_name in names and len(names.get("forward", [])) == len(texts)

    spans = one_trace(sink.wait_for(streamed), trace_id)
    (rpc,) = spans[rpc_name]
    assert rpc.parent_id == CALLER_SPAN and rpc.attributes["rpc.grpc.status_code"] == "OK"
    assert len(spans["queue wait"]) == len(spans["batch"]) == len(texts)
    assert all(s.parent_id == rpc.span_id for s in spans["queue wait"] + spans["batch"])


@pytest.mark.timeout(300)
def test_a_forward_pass_in_a_model_worker_process_is_timed_where_it_ran(
    prepared_models: Path, tmp_path: Path
) -> None:
    trace_id = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"
    with grpc_receiver() as (endpoint, sink), pytest.MonkeyPatch.context() as monkeypatch:
        otel_env(monkeypatch, endpoint, telemetry.GRPC)
        with (
            classifier_process(
                tmp_path, {"v1": STANDARD_BATCHING}, model_worker="process", model_workers="1"
            ) as classifier,
            grpc.insecure_channel(classifier.address) as channel,
        ):
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            metadata = (("traceparent", f"00-{trace_id}-{CALLER_SPAN}-01"),)
            stub.Classify(
                classifier_pb2.ClassifyRequest(texts=["a"]), timeout=60, metadata=metadata
            )
            spans = one_trace(
                sink.wait_for(lambda got: {"batch", "forward"} <= one_trace(got, trace_id).keys()),
                trace_id,
            )
    (batch,), (forward,) = spans["batch"], spans["forward"]
    assert forward.parent_id == batch.span_id
    assert batch.span.start_time_unix_nano <= forward.span.start_time_unix_nano
    assert forward.span.end_time_unix_nano <= batch.span.end_time_unix_nano
