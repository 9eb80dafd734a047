"""NER over real gRPC, in its own process, with the starter model."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from services.ner import training
from switchyard.client.config import LOW_PRIORITY, PRIORITY_KEY
from switchyard.common.v1 import models_pb2
from switchyard.ner.v1 import ner_pb2 as pb
from switchyard.ner.v1 import ner_pb2_grpc
from tests.support import ServiceProcess, details

Stub = ner_pb2_grpc.NerServiceStub
UNSEEN = "🎉 Last spring Ingrid Halvorsen moved to Lisbon."


@pytest.fixture
def stub(ner: ServiceProcess) -> Iterator[Stub]:
    with grpc.insecure_channel(ner.address) as channel:
        yield Stub(channel)


def test_unseen_names_are_found_with_code_point_offsets_and_their_capitals(
    stub: Stub,
) -> None:
    train_text = training.TRAIN_FILE.read_text()
    assert "Halvorsen" not in train_text and "Lisbon" not in train_text
    reply = stub.ExtractEntities(pb.ExtractEntitiesRequest(texts=[UNSEEN]), timeout=30)
    assert (reply.model, reply.version) == ("ner", "v1")
    found = {(e.label, e.start, e.end, e.text) for e in reply.results[0].entities}
    person = UNSEEN.index("Ingrid")
    place = UNSEEN.index("Lisbon")
    assert ("PER", person, person + len("Ingrid Halvorsen"), "Ingrid Halvorsen") in found
    assert ("LOC", place, place + len("Lisbon"), "Lisbon") in found
    # The model is uncased, yet the text keeps its capitals: it is sliced from the input.
    # Offsets count code points: the emoji is one, as in Python, not two as in UTF-16.
    assert UNSEEN[person : person + 6] == "Ingrid"


def test_stream_answers_every_text_tagged_with_its_id(stub: Stub) -> None:
    texts = {
        "a": "Chiara Bellini works in Dublin.",
        "b": "Nothing to see here.",
        "c": "   ",
        "d": "Priya Raman visited Hanoi.",
    }
    requests = iter([pb.ExtractEntitiesStreamRequest(id=i, text=t) for i, t in texts.items()])
    by_id = {r.id: r for r in stub.ExtractEntitiesStream(requests, timeout=60)}
    assert set(by_id) == set(texts)
    assert {e.label for e in by_id["a"].result.entities} >= {"PER", "LOC"}
    assert list(by_id["b"].result.entities) == []
    assert by_id["c"].error.code == "INVALID_ARGUMENT"


def test_a_batch_jobs_calls_find_the_same_entities_at_low_priority(
    ner: ServiceProcess, stub: Stub
) -> None:
    low = ((PRIORITY_KEY, LOW_PRIORITY),)
    v1 = {"model": "ner", "version": "v1"}
    ran_low = ner.metric("switchyard_low_priority_batch_size_sum", v1)
    request = pb.ExtractEntitiesRequest(texts=[UNSEEN])
    interactive = stub.ExtractEntities(request, timeout=30)
    job = stub.ExtractEntities(request, metadata=low, timeout=30)
    assert job.results == interactive.results
    requests = iter([pb.ExtractEntitiesStreamRequest(id="a", text=UNSEEN)])
    (streamed,) = stub.ExtractEntitiesStream(requests, metadata=low, timeout=60)
    assert streamed.result == interactive.results[0]
    assert ner.metric("switchyard_low_priority_batch_size_sum", v1) == ran_low + 2


def test_bad_requests_are_refused_like_the_classifier(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as too_many:
        stub.ExtractEntities(pb.ExtractEntitiesRequest(texts=["x"] * 9), timeout=10)
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_texts_per_request" in details(too_many.value)
    with pytest.raises(grpc.RpcError) as unknown:
        stub.ExtractEntities(pb.ExtractEntitiesRequest(version="v3", texts=["x"]), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_models_names_the_entity_types(stub: Stub) -> None:
    (model,) = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
    versions = {v.version: v for v in model.versions}
    assert (model.name, set(versions)) == ("ner", {"v1", "v1-int8"})
    for version in versions.values():
        assert list(version.labels) == ["LOC", "ORG", "PER"]
        assert version.status == models_pb2.MODEL_STATUS_READY
    assert versions["v1"].is_default
