"""Wiring of the summarizer service: its definition for the shared runtime, and main()."""

from __future__ import annotations

from grpc import aio

from services.runtime.metrics import ServiceMetrics
from services.runtime.registry import VersionSpec
from services.runtime.repository import ModelRepository
from services.runtime.server import ServiceDefinition, run_service
from services.runtime.settings import ServiceSettings, SummarizerSettings
from services.summarizer.model import CausalLmSummarizer, GenerationJob, Usage
from services.summarizer.servicer import SummarizerServicer
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

FULL_NAME = summarizer_pb2.DESCRIPTOR.services_by_name["SummarizerService"].full_name


def load_summarizer(spec: VersionSpec, location: str) -> CausalLmSummarizer:
    if spec.max_batch_size != 1:
        raise ValueError("a summarizer version generates one request at a time: max_batch_size = 1")
    return CausalLmSummarizer(location)


def add_servicer(
    server: aio.Server,
    repository: ModelRepository[GenerationJob, Usage],
    settings: ServiceSettings,
    metrics: ServiceMetrics,
) -> None:
    summarizer_pb2_grpc.add_SummarizerServiceServicer_to_server(
        SummarizerServicer(repository, metrics), server
    )


DEFINITION: ServiceDefinition[GenerationJob, Usage] = ServiceDefinition(
    name="summarizer",
    full_name=FULL_NAME,
    loader=load_summarizer,
    add_servicer=add_servicer,
    process_worker_ok=False,
)


def main(settings: SummarizerSettings | None = None) -> int:
    """Run the summarizer service until SIGTERM or SIGINT; returns the exit code."""
    return run_service(DEFINITION, settings or SummarizerSettings())
