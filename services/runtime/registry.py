"""The model registry file: per service, each model's versions and how they are served."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HUB_PREFIX = "hub:"

Runtime = Literal["transformers", "onnxruntime", "ctranslate2"]
"""What runs a version's forward pass: eager PyTorch through transformers (the reference,
any Hugging Face model), ONNX Runtime (classifier, NER) or CTranslate2 (generators), each
made from the same weights by ``switchyard models prepare``."""

Quantization = Literal["none", "int8"]


class VersionSpec(BaseModel):
    """One version of a model as the registry describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = ""
    version: str = ""
    weights: str = Field(description="A folder, or hub:<id> for a Hugging Face hub id.")
    labels: list[str] = Field(default_factory=list)
    max_input_chars: int = Field(2000, ge=1)
    max_batch_size: int = Field(32, ge=1)
    max_queue_delay_ms: float = Field(4.0, ge=0)
    max_queue_size: int = Field(256, ge=1)
    default_max_new_tokens: int = Field(96, ge=1, description="Generators: when a call sets none.")
    max_new_tokens_cap: int = Field(512, ge=1, description="Generators: most a call may ask.")
    description: str = ""
    runtime: Runtime = Field("transformers", description="What runs the forward pass.")
    quantization: Quantization = Field("none", description="Weights quantized by prepare.")
    reference: str = Field(
        "",
        description="The version (of the same model) this one was made from; its output is"
        " what an optimized version must agree with before it serves.",
    )
    prompt_lookup_tokens: int = Field(
        0,
        ge=0,
        le=64,
        description="Generators on transformers: greedy decoding drafts up to this many"
        " tokens per step from the text so far (prompt lookup) and the model checks them all"
        " in one forward pass, keeping those it would have chosen; 0 decodes a token a step.",
    )

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> VersionSpec:
        if self.max_queue_size < self.max_batch_size:
            raise ValueError("max_queue_size must be at least max_batch_size")
        return self

    @model_validator(mode="after")
    def _lookup_runs_on_transformers(self) -> VersionSpec:
        # CTranslate2 and ONNX Runtime offer no step that checks several drafted tokens.
        if self.prompt_lookup_tokens and self.runtime != "transformers":
            raise ValueError('prompt_lookup_tokens needs runtime = "transformers"')
        return self

    def weights_location(self, models_dir: Path) -> str:
        """What to hand to ``from_pretrained``: a folder path or a hub id."""
        if self.weights.startswith(HUB_PREFIX):
            return self.weights[len(HUB_PREFIX) :]
        path = Path(self.weights).expanduser()
        return str(path if path.is_absolute() else models_dir / path)


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_version: str
    versions: dict[str, VersionSpec]

    @model_validator(mode="after")
    def _default_exists(self) -> ModelSpec:
        if self.default_version not in self.versions:
            raise ValueError(f"default_version {self.default_version!r} is not listed")
        return self


class ServiceSpec(BaseModel):
    """Every model one service hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_model: str
    models: dict[str, ModelSpec]

    @model_validator(mode="after")
    def _default_exists(self) -> ServiceSpec:
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not listed")
        return self

    def version_specs(self) -> list[VersionSpec]:
        """Every version, with its model and version names filled in."""
        return [
            spec.model_copy(update={"model": model, "version": version})
            for model, m in self.models.items()
            for version, spec in m.versions.items()
        ]

    def only(self, entries: list[str]) -> ServiceSpec:
        """Keep only the listed "model:version" entries (all when the list is empty)."""
        if not entries:
            return self
        malformed = [e for e in entries if e.count(":") != 1 or not all(e.split(":"))]
        if malformed:
            raise ValueError(
                f"hosted versions are named model:version (e.g. sentiment:v1), not:"
                f" {', '.join(malformed)}"
            )
        wanted = {(model, version) for model, version in (e.split(":") for e in entries)}
        known = {(m, v) for m, spec in self.models.items() for v in spec.versions}
        unknown = sorted(f"{m}:{v}" for m, v in wanted - known)
        if unknown:
            raise ValueError(f"not in the registry: {', '.join(unknown)}")
        models: dict[str, ModelSpec] = {}
        for name, model in self.models.items():
            kept = {v: s for v, s in model.versions.items() if (name, v) in wanted}
            if kept:
                default = model.default_version if model.default_version in kept else min(kept)
                models[name] = ModelSpec(default_version=default, versions=kept)
        default_model = self.default_model if self.default_model in models else min(models)
        return ServiceSpec(default_model=default_model, models=models)


def load_registry(path: Path, service: str) -> ServiceSpec:
    """Read one service's part of the registry file."""
    with path.open("rb") as f:
        document = tomllib.load(f)
    if service not in document:
        raise ValueError(f"{path} has no [{service}] table")
    return ServiceSpec.model_validate(document[service])
