"""Wiring of the NER service: its definition for the shared runtime, and main()."""

from __future__ import annotations

from grpc import aio

from services.ner.model import Entity, TokenClassifierNer
from services.ner.onnx_model import OnnxTokenClassifierNer
from services.ner.servicer import NerServicer
from services.runtime.metrics import ServiceMetrics
from services.runtime.model import Predictor
from services.runtime.registry import VersionSpec
from services.runtime.repository import ModelRepository
from services.runtime.server import ServiceDefinition, run_service
from services.runtime.settings import NerSettings, ServiceSettings
from switchyard.ner.v1 import ner_pb2, ner_pb2_grpc

FULL_NAME = ner_pb2.DESCRIPTOR.services_by_name["NerService"].full_name


def load_ner(spec: VersionSpec, location: str) -> Predictor[str, list[Entity]]:
    """The version's model, run by the runtime the registry names for it."""
    ner: TokenClassifierNer | OnnxTokenClassifierNer
    if spec.runtime == "transformers":
        ner = TokenClassifierNer(location)
    elif spec.runtime == "onnxruntime":
        ner = OnnxTokenClassifierNer(location)
    else:
        raise ValueError(f"runtime {spec.runtime} does not run NER models")
    missing = set(spec.labels) - set(ner.labels)
    if missing:
        raise ValueError(
            f"registry labels {sorted(missing)} are not among the model's {ner.labels}"
        )
    return ner


def add_servicer(
    server: aio.Server,
    repository: ModelRepository[str, list[Entity]],
    settings: ServiceSettings,
    metrics: ServiceMetrics,
) -> None:
    ner_pb2_grpc.add_NerServiceServicer_to_server(NerServicer(repository, settings), server)


DEFINITION: ServiceDefinition[str, list[Entity]] = ServiceDefinition(
    name="ner", full_name=FULL_NAME, loader=load_ner, add_servicer=add_servicer
)


def main(settings: NerSettings | None = None) -> int:
    """Run the NER service until SIGTERM or SIGINT; returns the exit code."""
    return run_service(DEFINITION, settings or NerSettings())
