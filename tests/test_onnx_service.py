"""ONNX Runtime versions served over real gRPC beside their eager references, what
ListModels and the gateway say of them, and a service whose environment lacks
onnxruntime: that version fails to load, the others serve."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.optimize import agreement
from services.runtime.onnx_runtime import NOT_INSTALLED
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from switchyard.common.v1 import models_pb2
from switchyard.ner.v1 import ner_pb2, ner_pb2_grpc
from tests.support import (
    CLASSIFIER,
    GatewayProcess,
    ServiceProcess,
    classifier_process,
    write_registry,
)

INT8: dict[str, object] = {"runtime": "onnxruntime", "quantization": "int8", "reference": "v1"}
TEXTS = ["I love this", "I hate this", "What a wonderful day", "This is awful"]


@pytest.fixture(scope="module")
def classifier_with_int8(
    prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A classifier hosting sentiment v1 (transformers) and v1-int8 (ONNX Runtime)."""
    with classifier_process(
        tmp_path_factory.mktemp("onnx"), {"v1": {}, "v1-int8": INT8}
    ) as service:
        yield service


@pytest.fixture(scope="module")
def classifier_without_onnxruntime(
    prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The same classifier started where ``import onnxruntime`` fails, as it does where
    the package is not installed: a folder first on PYTHONPATH holds an ``onnxruntime``
    package that raises ImportError."""
    tmp = tmp_path_factory.mktemp("no-onnxruntime")
    shadow = tmp / "site" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError(\"No module named 'onnxruntime' (hidden by the test)\")\n"
    )
    registry = write_registry(tmp / "registry.toml", {"v1": {}, "v1-int8": INT8})
    inherited = os.environ.get("PYTHONPATH", "")
    service = ServiceProcess(
        "classifier",
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp / "site"), inherited])),
            "SWITCHYARD_CLASSIFIER_PORT": "0",
            "SWITCHYARD_CLASSIFIER_METRICS_PORT": "0",
            "SWITCHYARD_CLASSIFIER_HOST": "127.0.0.1",
            "SWITCHYARD_CLASSIFIER_TORCH_THREADS": "1",
            "SWITCHYARD_CLASSIFIER_REGISTRY": str(registry),
        },
    )
    try:
        service.wait_serving(CLASSIFIER)
        yield service
    finally:
        service.terminate()


def versions(address: str) -> dict[str, models_pb2.ModelVersion]:
    with grpc.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        (model,) = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
    return {v.version: v for v in model.versions}


def classify(address: str, version: str) -> pb.ClassifyResponse:
    with grpc.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        reply: pb.ClassifyResponse = stub.Classify(
            pb.ClassifyRequest(version=version, texts=TEXTS), timeout=30
        )
    return reply


def test_the_int8_version_answers_beside_v1(classifier_with_int8: ServiceProcess) -> None:
    eager = classify(classifier_with_int8.address, "v1")
    int8 = classify(classifier_with_int8.address, "v1-int8")
    assert (int8.model, int8.version) == ("sentiment", "v1-int8")
    assert [r.labels[0].label for r in int8.results] == [
        "positive",
        "negative",
        "positive",
        "negative",
    ]
    recorded = versions(classifier_with_int8.address)["v1-int8"].annotations
    largest = float(recorded["agreement_max_score_diff"])
    for ours, theirs in zip(int8.results, eager.results, strict=True):
        assert ours.labels[0].label == theirs.labels[0].label
        scores = {s.label: s.score for s in theirs.labels}
        for label in ours.labels:
            assert abs(label.score - scores[label.label]) <= largest + 1e-4


def test_list_models_shows_each_versions_runtime_and_agreement(
    classifier_with_int8: ServiceProcess, prepared_models: Path
) -> None:
    listed = versions(classifier_with_int8.address)
    assert all(v.status == models_pb2.MODEL_STATUS_READY for v in listed.values())
    assert listed["v1"].annotations["runtime"] == "transformers"
    assert listed["v1"].annotations["quantization"] == "none"
    assert not any(name.startswith("agreement_") for name in listed["v1"].annotations)
    int8 = listed["v1-int8"].annotations
    assert (int8["runtime"], int8["quantization"], int8["reference"]) == (
        "onnxruntime",
        "int8",
        "v1",
    )
    marker = prepared_models / "sentiment" / "v1-int8" / "prepared.json"
    figures = json.loads(marker.read_text())["figures"]
    assert float(int8["agreement_label"]) == pytest.approx(figures["agreement_label"], rel=1e-5)
    assert float(int8["agreement_label"]) >= agreement.MIN_LABEL_AGREEMENT
    assert float(int8["agreement_max_score_diff"]) == pytest.approx(
        figures["agreement_max_score_diff"], rel=1e-5
    )


def test_without_onnxruntime_only_that_version_fails(
    classifier_without_onnxruntime: ServiceProcess,
) -> None:
    service = classifier_without_onnxruntime
    listed = versions(service.address)
    assert listed["v1"].status == models_pb2.MODEL_STATUS_READY
    assert listed["v1-int8"].status == models_pb2.MODEL_STATUS_FAILED
    assert [r.labels[0].label for r in classify(service.address, "v1").results][:2] == [
        "positive",
        "negative",
    ]
    with pytest.raises(grpc.RpcError) as refused:
        classify(service.address, "v1-int8")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "v1-int8 failed to load" in str(refused.value.details())
    # The service as a whole serves what it can; the failed version is told by ListModels.
    with grpc.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=CLASSIFIER), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # The log says why, in words an operator can act on.
    service.wait_log(lambda record: NOT_INSTALLED in json.dumps(record))


def test_the_ner_int8_version_finds_what_v1_finds(ner: ServiceProcess) -> None:
    text = "Ingrid Halvorsen moved from Oslo to Lisbon to work for Siemens."
    with grpc.insecure_channel(ner.address) as channel:
        stub = ner_pb2_grpc.NerServiceStub(channel)
        found = {
            version: [
                (e.label, e.start, e.end, e.text)
                for e in stub.ExtractEntities(
                    ner_pb2.ExtractEntitiesRequest(version=version, texts=[text]), timeout=30
                )
                .results[0]
                .entities
            ]
            for version in ("v1", "v1-int8")
        }
        (model,) = stub.ListModels(ner_pb2.ListModelsRequest(), timeout=10).models
    assert found["v1-int8"] == found["v1"]
    int8 = {v.version: v for v in model.versions}["v1-int8"].annotations
    assert (int8["runtime"], int8["quantization"], int8["reference"]) == (
        "onnxruntime",
        "int8",
        "v1",
    )
    for name, floor in agreement.NER_FLOORS.items():
        assert float(int8[name]) >= floor
    assert "agreement_entity_f1_delta" in int8


def test_the_gateway_lists_runtime_quantization_and_agreement(
    gateway: GatewayProcess, client_key: str
) -> None:
    reply = httpx.get(
        f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {client_key}"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    ner = {
        v["version"]: v
        for m in reply.json()["models"]
        if m["service"] == "ner"
        for v in m["versions"]
    }
    assert (ner["v1"]["runtime"], ner["v1"]["quantization"], ner["v1"]["agreement"]) == (
        "transformers",
        "none",
        {},
    )
    int8 = ner["v1-int8"]
    assert (int8["runtime"], int8["quantization"], int8["reference"]) == (
        "onnxruntime",
        "int8",
        "v1",
    )
    assert set(int8["agreement"]) == {
        "agreement_entity_f1",
        "agreement_entity_f1_delta",
        "agreement_entity_f1_ratio",
    }
    assert int8["agreement"]["agreement_entity_f1"] >= agreement.MIN_ENTITY_AGREEMENT_F1
