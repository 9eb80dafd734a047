"""The ListModels answer every service gives, built from its model repository."""

from __future__ import annotations

from typing import Any

from services.runtime.repository import ModelRepository, VersionStatus
from switchyard.common.v1 import models_pb2

_STATUS = {
    VersionStatus.LOADING: models_pb2.MODEL_STATUS_LOADING,
    VersionStatus.READY: models_pb2.MODEL_STATUS_READY,
    VersionStatus.FAILED: models_pb2.MODEL_STATUS_FAILED,
    VersionStatus.DRAINING: models_pb2.MODEL_STATUS_DRAINING,
}


def catalogue(
    repository: ModelRepository[Any, Any], generator: bool = False
) -> list[models_pb2.ModelInfo]:
    """Every hosted model with its versions, labels and readiness (and, for a generator,
    its default number of new tokens)."""
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
        if spec.reference:
            annotations["reference"] = spec.reference
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
