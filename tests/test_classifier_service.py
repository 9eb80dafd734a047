"""The classifier over real gRPC, in its own process, with the starter models."""

from __future__ import annotations

import queue

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from switchyard.client.config import LOW_PRIORITY, PRIORITY_KEY
from switchyard.common.v1 import models_pb2
from tests.support import CLASSIFIER, ServiceProcess, details

Stub = classifier_pb2_grpc.ClassifierServiceStub


def top_label(result: pb.Classification) -> str:
    return result.labels[0].label


def rpc_error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_health_is_serving_for_the_service_and_the_server(classifier: ServiceProcess) -> None:
    with grpc.insecure_channel(classifier.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", CLASSIFIER):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(classifier: ServiceProcess) -> None:
    with grpc.insecure_channel(classifier.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert CLASSIFIER in database.get_services()
        method = database.FindFileContainingSymbol(CLASSIFIER)
        assert method.name == "switchyard/classifier/v1/classifier.proto"


def test_classify_labels_each_text_in_order(classifier_stub: Stub) -> None:
    reply = classifier_stub.Classify(
        pb.ClassifyRequest(texts=["I love this", "I hate this"], request_id="r-1"), timeout=30
    )
    assert [top_label(r) for r in reply.results] == ["positive", "negative"]
    assert (reply.model, reply.version, reply.request_id) == ("sentiment", "v1", "r-1")
    scores = reply.results[0].labels
    assert {s.label for s in scores} == {"positive", "negative"}
    assert scores[0].score >= scores[1].score
    assert abs(sum(s.score for s in scores) - 1.0) < 1e-4


def test_a_request_may_name_the_version_and_top_k(classifier_stub: Stub) -> None:
    reply = classifier_stub.Classify(
        pb.ClassifyRequest(model="sentiment", version="v2", texts=["not bad at all"], top_k=1),
        timeout=30,
    )
    assert reply.version == "v2"
    assert [label.label for label in reply.results[0].labels] == ["positive"]


def test_stream_answers_every_text_tagged_with_its_id(classifier_stub: Stub) -> None:
    texts = {
        f"id-{i}": text
        for i, text in enumerate(
            ["I love this", "I hate this", "What a wonderful day", "This is awful"] * 5
        )
    }
    requests = (pb.ClassifyStreamRequest(id=i, text=t) for i, t in texts.items())
    replies = list(classifier_stub.ClassifyStream(requests, timeout=60))
    assert sorted(r.id for r in replies) == sorted(texts)
    by_id = {r.id: r for r in replies}
    assert top_label(by_id["id-0"].result) == "positive"
    assert top_label(by_id["id-1"].result) == "negative"
    assert all(r.WhichOneof("outcome") == "result" and r.version == "v1" for r in replies)


def test_stream_reports_a_bad_item_and_goes_on(classifier_stub: Stub) -> None:
    requests = [
        pb.ClassifyStreamRequest(id="good", text="I love this"),
        pb.ClassifyStreamRequest(id="blank", text="   "),
        pb.ClassifyStreamRequest(id="ghost", text="fine", version="v9"),
        pb.ClassifyStreamRequest(id="after", text="I hate this", version="v2"),
    ]
    by_id = {r.id: r for r in classifier_stub.ClassifyStream(iter(requests), timeout=60)}
    assert by_id["blank"].error.code == "INVALID_ARGUMENT"
    assert by_id["ghost"].error.code == "NOT_FOUND"
    assert top_label(by_id["good"].result) == "positive"
    assert top_label(by_id["after"].result) == "negative"
    assert by_id["after"].version == "v2"


def test_list_models_shows_versions_labels_and_readiness(classifier_stub: Stub) -> None:
    reply = classifier_stub.ListModels(pb.ListModelsRequest(), timeout=10)
    (model,) = reply.models
    assert model.name == "sentiment" and model.is_default
    versions = {v.version: v for v in model.versions}
    assert set(versions) == {"v1", "v2"}
    assert versions["v1"].is_default and not versions["v2"].is_default
    assert all(v.status == models_pb2.MODEL_STATUS_READY for v in versions.values())
    assert sorted(versions["v2"].labels) == ["negative", "positive"]


@pytest.mark.parametrize(
    ("model", "version", "mentions"),
    [("sentiment", "v9", "v1, v2"), ("topics", "", "sentiment")],
)
def test_unknown_model_or_version_is_not_found(
    classifier_stub: Stub, model: str, version: str, mentions: str
) -> None:
    error = rpc_error(
        lambda: classifier_stub.Classify(
            pb.ClassifyRequest(model=model, version=version, texts=["hi"]), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert mentions in details(error)


@pytest.mark.parametrize(
    ("texts", "mentions"),
    [
        ([], "texts is empty"),
        (["fine", "  \n\t"], "texts[1] is empty"),
        (["x" * 201], "the limit is 200 (max_input_chars)"),
        (["ok"] * 9, "the limit is 8 (max_texts_per_request)"),
    ],
)
def test_bad_texts_are_invalid_arguments(
    classifier_stub: Stub, texts: list[str], mentions: str
) -> None:
    error = rpc_error(lambda: classifier_stub.Classify(pb.ClassifyRequest(texts=texts), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert mentions in details(error)


def test_invalid_utf8_is_an_invalid_argument(classifier: ServiceProcess) -> None:
    # Field 4 (texts), wire type 2, holding two bytes that are not UTF-8.
    raw = bytes([0x22, 0x02, 0xC3, 0x28])
    with grpc.insecure_channel(classifier.address) as channel:
        classify = channel.unary_unary(
            f"/{CLASSIFIER}/Classify",
            request_serializer=lambda b: b,
            response_deserializer=pb.ClassifyResponse.FromString,
        )
        error = rpc_error(lambda: classify(raw, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "UTF-8" in details(error)
        assert "DecodeError" not in details(error)

        stream = channel.stream_stream(
            f"/{CLASSIFIER}/ClassifyStream",
            request_serializer=lambda b: b,
            response_deserializer=pb.ClassifyStreamResponse.FromString,
        )
        # Field 2 (text) of a ClassifyStreamRequest holding the same bad bytes.
        bad = bytes([0x12, 0x02, 0xC3, 0x28])
        error = rpc_error(lambda: list(stream(iter([bad]), timeout=10)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

        # The service is unharmed.
        reply = Stub(channel).Classify(pb.ClassifyRequest(texts=["I love this"]), timeout=30)
        assert top_label(reply.results[0]) == "positive"


def test_a_stream_abandoned_half_way_leaves_the_service_whole(
    classifier: ServiceProcess, classifier_stub: Stub
) -> None:
    outbox: queue.Queue[pb.ClassifyStreamRequest | None] = queue.Queue()
    call = classifier_stub.ClassifyStream(iter(outbox.get, None), timeout=60)
    responses = iter(call)
    for i in range(3):
        outbox.put(pb.ClassifyStreamRequest(id=str(i), text="I love this"))
    assert next(responses).WhichOneof("outcome") == "result"
    call.cancel()  # type: ignore[no-untyped-call]
    outbox.put(None)
    classifier.wait_metric("switchyard_queue_depth", {"model": "sentiment", "version": "v1"}, 0)
    reply = classifier_stub.Classify(pb.ClassifyRequest(texts=["I hate this"]), timeout=30)
    assert top_label(reply.results[0]) == "negative"


def test_a_batch_jobs_calls_are_answered_at_low_priority(
    classifier: ServiceProcess, classifier_stub: Stub
) -> None:
    low = ((PRIORITY_KEY, LOW_PRIORITY),)
    v1 = {"model": "sentiment", "version": "v1"}
    ran_low = classifier.metric("switchyard_low_priority_batch_size_sum", v1)
    reply = classifier_stub.Classify(
        pb.ClassifyRequest(texts=["I love this", "I hate this"], request_id="job-1"),
        metadata=low,
        timeout=30,
    )
    assert [top_label(r) for r in reply.results] == ["positive", "negative"]
    assert reply.request_id == "job-1"
    requests = [
        pb.ClassifyStreamRequest(id="a", text="What a wonderful day"),
        pb.ClassifyStreamRequest(id="b", text="This is awful"),
    ]
    replies = classifier_stub.ClassifyStream(iter(requests), metadata=low, timeout=60)
    by_id = {r.id: r for r in replies}
    assert top_label(by_id["a"].result) == "positive"
    assert top_label(by_id["b"].result) == "negative"
    # Its four texts ran in the service's low-priority batches; an interactive call's not.
    assert classifier.metric("switchyard_low_priority_batch_size_sum", v1) == ran_low + 4
    classifier_stub.Classify(pb.ClassifyRequest(texts=["fine"]), timeout=30)
    other = (PRIORITY_KEY, "urgent")
    classifier_stub.Classify(pb.ClassifyRequest(texts=["fine"]), metadata=(other,), timeout=30)
    assert classifier.metric("switchyard_low_priority_batch_size_sum", v1) == ran_low + 4
