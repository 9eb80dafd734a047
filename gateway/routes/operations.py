"""Models listing, liveness, readiness and metrics."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.backends.endpoints import SERVICES
from gateway.errors.refusals import NotFound
from gateway.routes.deps import Client, MetricsReader, State
from gateway.routes.responses import CALLER, refusals
from gateway.routes.schemas import ModelCard, ModelEntry, ModelsAnswer, VersionInfo
from gateway.state import GatewayState
from switchyard.common.v1 import models_pb2

router = APIRouter()

AGREEMENT_PREFIX = "agreement_"
"""Annotations of a version so named (by the services' ListModels) are agreement figures."""


@router.get(
    "/v1/models",
    response_model=ModelsAnswer,
    tags=["models"],
    summary="List models",
    responses=refusals(*CALLER),
)
async def list_models(state: State, caller: Client) -> ModelsAnswer:
    """Every model and version the backends host, as they last listed them."""
    models = hosted_models(state)
    return ModelsAnswer(models=models, data=[model_card(entry) for entry in models])


@router.get(
    "/v1/models/{model}",
    response_model=ModelCard,
    tags=["models"],
    summary="One model, in OpenAI's shape",
    responses=refusals(*CALLER, NotFound),
)
async def retrieve_model(model: str, state: State, caller: Client) -> ModelCard:
    """A hosted model as OpenAI's ``models.retrieve`` reads it."""
    for entry in hosted_models(state):
        if entry.name == model:
            return model_card(entry)
    raise NotFound(f"no backend hosts a model named {model!r}")


def hosted_models(state: GatewayState) -> list[ModelEntry]:
    """Every model and version the backends host, as they last listed them."""
    backends = state.backends
    return [
        ModelEntry(
            service=service,
            name=info.name,
            default=info.is_default,
            versions=[
                VersionInfo(
                    version=v.version,
                    status=models_pb2.ModelStatus.Name(v.status)
                    .removeprefix("MODEL_STATUS_")
                    .lower(),
                    default=v.is_default,
                    labels=list(v.labels),
                    max_batch_size=v.max_batch_size,
                    max_input_chars=v.max_input_chars,
                    runtime=v.annotations.get("runtime", ""),
                    quantization=v.annotations.get("quantization", ""),
                    reference=v.annotations.get("reference", ""),
                    prompt_lookup_tokens=_whole_number(v.annotations.get("prompt_lookup_tokens")),
                    agreement=agreement_figures(v.annotations),
                )
                for v in info.versions
            ],
        )
        for service in SERVICES
        for info in backends.models(service)
    ]


def model_card(entry: ModelEntry) -> ModelCard:
    """A model as OpenAI's list shows it."""
    return ModelCard(
        id=entry.name,
        service=entry.service,
        versions=[v.version for v in entry.versions],
        default_version=next((v.version for v in entry.versions if v.default), ""),
    )


def _whole_number(annotation: str | None) -> int:
    """An annotation that counts something, 0 when absent, negative or not a whole number."""
    try:
        return max(0, int(annotation or 0))
    except ValueError:
        return 0


def agreement_figures(annotations: Mapping[str, str]) -> dict[str, float]:
    """The agreement figures a backend lists for a version (one that is not a finite
    number is left out rather than failing the whole listing)."""
    figures = {}
    for name, value in annotations.items():
        if name.startswith(AGREEMENT_PREFIX):
            with contextlib.suppress(ValueError):
                figures[name] = float(value)
    return {name: value for name, value in figures.items() if math.isfinite(value)}


@router.get("/healthz", tags=["operations"], summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: every service has a backend that answers SERVING to a gRPC health check",
    responses={503: {"description": "Draining, or a service has no serving backend."}},
)
async def readyz(state: State) -> JSONResponse:
    if state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    failing = await state.backends.unhealthy()
    # Ready while every service has a serving backend; one replica down (a canary's, say)
    # is named but does not take the whole gateway out of its balancer. A service with no
    # backend configured is not one this gateway serves: it is not waited for.
    down = [
        service
        for service, endpoints in state.backends.endpoints.items()
        if endpoints and all(e.name in failing for e in endpoints)
    ]
    if down:
        return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
    return JSONResponse({"status": "ready", **({"degraded": failing} if failing else {})})


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    description="The Prometheus text format. Public unless the gateway's settings make it"
    " an operator's (`metrics_public`).",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **refusals(*CALLER),
    },
)
async def metrics(state: State, reader: MetricsReader) -> Response:
    registry = state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
