"""The ListModels answer every service gives, built from its model repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.prepare import MARKER
from services.runtime.registry import HUB_PREFIX, VersionSpec
from services.runtime.repository import ModelRepository, VersionStatus
from switchyard.common.v1 import models_pb2

_STATUS = {
    VersionStatus.LOADING: models_pb2.MODEL_STATUS_LOADING,
    VersionStatus.READY: models_pb2.MODEL_STATUS_READY,
    VersionStatus.FAILED: models_pb2.MODEL_STATUS_FAILED,
    VersionStatus.DRAINING: models_pb2.MODEL_STATUS_DRAINING,
}


AGREEMENT_PREFIX = "agreement_"
"""Figures named so in a version's ``prepared.json`` compare it with its reference."""


def catalogue(
    repository: ModelRepository[Any, Any], generator: bool = False, models_dir: Path | None = None
) -> list[models_pb2.ModelInfo]:
    """Every hosted model with its versions, labels and readiness, the runtime that runs
    each one and, for a version made from another, how closely it agrees with it (read
    from its folder in ``models_dir``); for a generator, its default number of new
    tokens."""
    models: dict[str, models_pb2.ModelInfo] = {}
    for hosted in repository.hosted():
        spec = hosted.spec
        info = models.setdefault(
            spec.model,
            models_pb2.ModelInfo(
                name=spec.model, is_default=spec.model == repository.default_model
            ),
        )
        annotations = {"description": spec.description} if spec.description else {}
        annotations["runtime"] = spec.runtime
        annotations["quantization"] = spec.quantization
        if spec.prompt_lookup_tokens:
            annotations["prompt_lookup_tokens"] = str(spec.prompt_lookup_tokens)
        if spec.reference:
            annotations["reference"] = spec.reference
            if models_dir is not None:
                annotations.update(agreement_figures(spec, models_dir))
        if generator:
            # The gateway bounds a caller's tokens by its tier and needs the default.
            annotations["default_max_new_tokens"] = str(spec.default_max_new_tokens)
        info.versions.append(
            models_pb2.ModelVersion(
                version=spec.version,
                status=_STATUS[hosted.status],
                is_default=hosted.is_default,
                labels=spec.labels,
                annotations=annotations,
                max_batch_size=spec.max_batch_size,
                max_input_chars=spec.max_input_chars,
            )
        )
    return list(models.values())


def agreement_figures(spec: VersionSpec, models_dir: Path) -> dict[str, str]:
    """The agreement figures ``switchyard models prepare`` measured for a version and
    kept in its folder (none for a hub id or a folder that prepare did not build)."""
    if spec.weights.startswith(HUB_PREFIX):
        return {}
    marker = Path(spec.weights_location(models_dir)) / MARKER
    try:
        figures = json.loads(marker.read_text()).get("figures", {})
    except (OSError, ValueError):
        return {}
    return {
        name: f"{value:.6g}"
        for name, value in figures.items()
        if name.startswith(AGREEMENT_PREFIX) and isinstance(value, int | float)
    }
