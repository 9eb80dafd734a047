"""``POST /v1/feedback``: a caller reports how a request it made turned out, attributed
to the version that answered it; ``GET /v1/admin/experiments/{model}``: each version's
outcomes and whether it differs from the baseline, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from gateway.errors.refusals import NotFound
from gateway.experiments.statistics import VariantResult, results
from gateway.routes.bodies import documented, read_body
from gateway.routes.deps import Client, Operator, State
from gateway.routes.operations import hosted_models
from gateway.routes.responses import CALLER, JSON_BODY, refusals
from gateway.state import GatewayState

router = APIRouter(tags=["experiments"])

Label = Annotated[str, Field(min_length=1, max_length=64)]


class FeedbackBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"request_id": "4bf92f3577b34da6", "value": True}]},
    )
    request_id: str = Field(
        min_length=1, max_length=128, description="The X-Request-ID of the answer."
    )
    value: StrictBool | StrictInt | StrictFloat | Label = Field(
        description="The outcome: true/false (a rate), a number (a mean), or a label."
    )


class FeedbackAnswer(BaseModel):
    request_id: str
    model: str
    version: str = Field(description="The version the outcome is attributed to.")


class ExperimentResults(BaseModel):
    model: str
    baseline: str = Field(description="The version the others are compared with.")
    results: list[VariantResult]


@router.post(
    "/v1/feedback",
    response_model=FeedbackAnswer,
    summary="Report the outcome of a request you made",
    responses=refusals(*CALLER, *JSON_BODY, NotFound),
    openapi_extra=documented(FeedbackBody),
)
async def feedback(request: Request, state: State, caller: Client) -> FeedbackAnswer:
    body = await read_body(request, FeedbackBody)
    answered = await state.answers.find(caller.id, body.request_id)
    if answered is None:
        raise NotFound(
            f"no answer to request {body.request_id!r} for this caller (answers are kept"
            " seven days; report outcomes of your own requests)"
        )
    model, version = answered
    # An integer rating is a number like any other (a bool is not).
    value = body.value
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    await state.outcomes.record(model, version, caller.id, body.request_id, value)
    return FeedbackAnswer(request_id=body.request_id, model=model, version=version)


@router.get(
    "/v1/admin/experiments/{model}",
    response_model=ExperimentResults,
    tags=["admin"],
    summary="Each version's reported outcomes against the baseline",
    responses={
        **refusals(*CALLER),
        200: {"content": {"application/json": {}, "text/csv": {}}},
    },
)
async def experiment(
    model: str, state: State, caller: Operator, format: Literal["json", "csv"] = "json"
) -> object:
    found = await experiment_results(state, model)
    if format == "csv":
        return Response(as_csv(found), media_type="text/csv")
    return found


async def experiment_results(state: GatewayState, model: str) -> ExperimentResults:
    """Each version's reported outcomes of ``model`` against the baseline."""
    outcomes = await state.outcomes.outcomes(model)
    base = baseline(state, model, sorted(outcomes))
    return ExperimentResults(model=model, baseline=base, results=results(outcomes, base))


def baseline(state: GatewayState, model: str, versions: list[str]) -> str:
    """The rollout's stable version, else the default version the backends host, else
    the first version with outcomes."""
    table = state.router.tables().get(model)
    if table is not None:
        return table.stable.version
    for entry in hosted_models(state):
        if entry.name == model:
            for v in entry.versions:
                if v.default:
                    return v.version
    return versions[0] if versions else ""


def as_csv(found: ExperimentResults) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "model",
            "version",
            "kind",
            "n",
            "estimate",
            "low",
            "high",
            "shares",
            "baseline",
            "test",
            "statistic",
            "p_value",
            "note",
        ]
    )
    for r in found.results:
        shares = " ".join(f"{label}={share:.4g}" for label, share in r.shares.items())
        compared = r.comparison
        writer.writerow(
            [
                found.model,
                r.version,
                r.kind,
                r.n,
                _num(r.estimate),
                _num(r.low),
                _num(r.high),
                shares,
                r.baseline,
                compared.test if compared else "",
                _num(compared.statistic if compared else None),
                _num(compared.p_value if compared else None),
                r.note,
            ]
        )
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
