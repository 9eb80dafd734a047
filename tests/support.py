"""Helpers the tests share: service processes on free ports, metrics scraping, registries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc

from switchyard.paths import state_dir
from switchyard.processes import (
    CLASSIFIER,
    NER,
    SUMMARIZER,
    GatewayProcess,
    ServiceProcess,
    free_port,
    gateway_process,
    service_process,
    write_classifier_registry,
)
from switchyard.service_table import FULL_NAMES

__all__ = [
    "CLASSIFIER",
    "FULL_NAMES",
    "NER",
    "SUMMARIZER",
    "GatewayProcess",
    "ServiceProcess",
    "free_port",
    "gateway_process",
    "service_process",
]

MODELS_DIR = state_dir() / "models"


def details(error: grpc.RpcError) -> str:
    """The status message of a failed call."""
    return str(error.details())


def write_registry(path: Path, versions: Mapping[str, Mapping[str, object]]) -> Path:
    """A classifier registry hosting the given prepared sentiment versions."""
    return write_classifier_registry(path, MODELS_DIR, versions)


@contextmanager
def classifier_process(
    tmp: Path, versions: Mapping[str, Mapping[str, object]], **settings: str
) -> Iterator[ServiceProcess]:
    """A classifier process serving the given sentiment ``versions``."""
    registry = write_registry(tmp / "registry.toml", versions)
    with service_process("classifier", registry, **settings) as service:
        yield service
