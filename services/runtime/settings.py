"""Settings of a model service process, read from the environment.

Each service has its own prefix (``SWITCHYARD_CLASSIFIER_``, ``SWITCHYARD_NER_``,
``SWITCHYARD_SUMMARIZER_``), so that one environment can configure all of them. The
prefixes and the default ports come from the service table (``switchyard.service_table``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from switchyard.paths import state_dir
from switchyard.service_table import model_service

DEFAULT_REGISTRY = Path(__file__).resolve().parents[1] / "registry.toml"


class ServiceSettings(BaseSettings):
    """Settings every model service shares; subclasses set the prefix and default ports."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: ClassVar[str] = ""

    host: str = Field("0.0.0.0", description="Address the gRPC and metrics servers bind.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Prometheus metrics port; 0 picks a free one."
    )
    registry: Path = Field(DEFAULT_REGISTRY, description="Model registry file (TOML).")
    models_dir: Path = Field(
        default_factory=lambda: state_dir() / "models",
        description="Folder that relative weight paths in the registry are resolved against.",
    )
    only_versions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description='Host only these comma-separated "model:version" entries; empty hosts all.',
    )
    model_worker: Literal["process", "thread"] = Field(
        "thread",
        description="Run the model versions on one thread of the gRPC process, each forward"
        " pass on the torch threads (thread), or each version in model worker processes of"
        " its own (process). The summarizer always uses a thread: it streams from the model.",
    )
    model_workers: int = Field(
        0,
        ge=0,
        description="Model worker processes per version (process mode); 0: one per core.",
    )
    torch_threads: int = Field(
        0,
        ge=0,
        description="Torch intra-op threads of a forward pass; 0: chosen from the cores (all"
        " of them on the model thread; shared out among the workers in process mode).",
    )
    max_texts_per_request: int = Field(
        64, ge=1, description="Most texts one unary request may carry."
    )
    stream_window: int = Field(
        64, ge=1, description="Most items of one stream in flight at once (back-pressure)."
    )
    drain_grace_s: float = Field(
        30.0, gt=0, description="How long accepted calls may take to finish after SIGTERM."
    )
    max_connection_age_s: float = Field(
        0.0,
        ge=0,
        description="Ask each client to reconnect after this long (0: never), so that clients"
        " resolve the service's name again and reach replicas added since (a headless"
        " Kubernetes Service).",
    )
    max_connection_age_grace_s: float = Field(
        330.0,
        gt=0,
        description="How long calls on a connection past its age may still run (longer than"
        " the longest summary stream).",
    )
    log_level: str = Field("INFO", description="Log level of the service's JSON logs.")
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) of the gRPC server: with tls_key_file, it serves"
        " TLS only. The metrics port stays plain HTTP.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA certificates: clients must present a certificate one of them"
        " signed (mTLS). Needs tls_cert_file.",
    )

    @field_validator("only_versions", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _tls_complete(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set tls_cert_file and tls_key_file together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        return self

    def worker_layout(self) -> tuple[int, int]:
        """In process mode, model worker processes per version and torch threads in each:
        by default one worker per core with one thread each, whose forward passes run side
        by side and keep going when another process takes a core for a moment."""
        cores = len(os.sched_getaffinity(0))
        workers = self.model_workers or cores
        return workers, self.torch_threads or max(1, cores // workers)


_CLASSIFIER = model_service("classifier")
_NER = model_service("ner")
_SUMMARIZER = model_service("summarizer")


class ClassifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_CLASSIFIER.env_prefix)
    service_name: ClassVar[str] = _CLASSIFIER.name
    port: int = Field(
        _CLASSIFIER.default_port, ge=0, le=65535, description="gRPC port; 0 picks a free one."
    )
    metrics_port: int = Field(
        _CLASSIFIER.default_metrics_port,
        ge=0,
        le=65535,
        description="Prometheus metrics port; 0 picks a free one.",
    )


class NerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_NER.env_prefix)
    service_name: ClassVar[str] = _NER.name
    port: int = Field(
        _NER.default_port, ge=0, le=65535, description="gRPC port; 0 picks a free one."
    )
    metrics_port: int = Field(
        _NER.default_metrics_port,
        ge=0,
        le=65535,
        description="Prometheus metrics port; 0 picks a free one.",
    )


class SummarizerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_SUMMARIZER.env_prefix)
    service_name: ClassVar[str] = _SUMMARIZER.name
    port: int = Field(
        _SUMMARIZER.default_port, ge=0, le=65535, description="gRPC port; 0 picks a free one."
    )
    metrics_port: int = Field(
        _SUMMARIZER.default_metrics_port,
        ge=0,
        le=65535,
        description="Prometheus metrics port; 0 picks a free one.",
    )


# One settings class per service of the table (tests/test_agreement.py checks it).
SETTINGS_CLASSES: dict[str, type[ServiceSettings]] = {
    cls.service_name: cls for cls in (ClassifierSettings, NerSettings, SummarizerSettings)
}


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings of the service the table names ``service``."""
    return SETTINGS_CLASSES[model_service(service).name]
