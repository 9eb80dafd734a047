"""Wiring of the classifier service: its definition for the shared runtime, and main()."""

from __future__ import annotations

from grpc import aio

from services.classifier.model import LabelScore, SequenceClassifier
from services.classifier.onnx_model import OnnxSequenceClassifier
from services.classifier.servicer import ClassifierServicer
from services.runtime.metrics import ServiceMetrics
from services.runtime.model import Predictor
from services.runtime.registry import VersionSpec
from services.runtime.repository import ModelRepository
from services.runtime.server import ServiceDefinition, run_service
from services.runtime.settings import ClassifierSettings, ServiceSettings
from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc

FULL_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


def load_classifier(spec: VersionSpec, location: str) -> Predictor[str, list[LabelScore]]:
    """The version's model, run by the runtime the registry names for it."""
    classifier: SequenceClassifier | OnnxSequenceClassifier
    if spec.runtime == "transformers":
        classifier = SequenceClassifier(location)
    elif spec.runtime == "onnxruntime":
        classifier = OnnxSequenceClassifier(location)
    else:
        raise ValueError(f"runtime {spec.runtime} does not run classifiers")
    if spec.labels and sorted(spec.labels) != sorted(classifier.labels):
        raise ValueError(
            f"registry labels {spec.labels} differ from the model's labels {classifier.labels}"
        )
    return classifier


def add_servicer(
    server: aio.Server,
    repository: ModelRepository[str, list[LabelScore]],
    settings: ServiceSettings,
    metrics: ServiceMetrics,
) -> None:
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(
        ClassifierServicer(repository, settings), server
    )


DEFINITION: ServiceDefinition[str, list[LabelScore]] = ServiceDefinition(
    name="classifier",
    full_name=FULL_NAME,
    loader=load_classifier,
    add_servicer=add_servicer,
)


def main(settings: ClassifierSettings | None = None) -> int:
    """Run the classifier service until SIGTERM or SIGINT; returns the exit code."""
    return run_service(DEFINITION, settings or ClassifierSettings())
