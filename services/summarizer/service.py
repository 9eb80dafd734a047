"""Wiring of the summarizer service: its definition for the shared runtime, and main()."""

from __future__ import annotations

import dataclasses
import functools

from grpc import aio

from services.runtime.metrics import ServiceMetrics
from services.runtime.registry import VersionSpec
from services.runtime.repository import ModelRepository, Predictor
from services.runtime.server import ServiceDefinition, run_service
from services.runtime.settings import ServiceSettings, SummarizerSettings
from services.summarizer.generation import GenerationJob, Usage
from services.summarizer.servicer import SummarizerServicer
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

FULL_NAME = summarizer_pb2.DESCRIPTOR.services_by_name["SummarizerService"].full_name


def load_summarizer(
    spec: VersionSpec, location: str, torch_threads: int = 0
) -> Predictor[GenerationJob, Usage]:
    """A version's model on the runtime its registry entry names. Each runtime's package is
    imported here, so that a missing one fails only the versions that run on it."""
    if spec.max_batch_size != 1:
        raise ValueError("a summarizer version generates one request at a time: max_batch_size = 1")
    if spec.runtime == "ctranslate2":
        from services.summarizer.ctranslate2_model import Ctranslate2Summarizer, intra_threads

        return Ctranslate2Summarizer(location, intra_threads(torch_threads))
    if spec.runtime == "transformers":
        from services.summarizer.model import CausalLmSummarizer

        return CausalLmSummarizer(location, spec.prompt_lookup_tokens)
    raise ValueError(f"the summarizer has no {spec.runtime} runtime (transformers, ctranslate2)")


def add_servicer(
    server: aio.Server,
    repository: ModelRepository[GenerationJob, Usage],
    settings: ServiceSettings,
    metrics: ServiceMetrics,
) -> None:
    summarizer_pb2_grpc.add_SummarizerServiceServicer_to_server(
        SummarizerServicer(repository, metrics, settings.models_dir), server
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
    settings = settings or SummarizerSettings()
    # CTranslate2 versions take as many threads as torch is given.
    loader = functools.partial(load_summarizer, torch_threads=settings.torch_threads)
    return run_service(dataclasses.replace(DEFINITION, loader=loader), settings)
