"""``POST /v1/classify`` and ``POST /v1/ner``: results per text, in order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from gateway import request_context
from gateway.pipeline import admit, call_backend, choose_version, time_budget_s
from gateway.responses import ERROR_RESPONSES, json_answer
from gateway.schemas import (
    Classification,
    ClassifyAnswer,
    ClassifyBody,
    Entity,
    EntityList,
    LabelScore,
    NerAnswer,
    NerBody,
)
from gateway.state import gateway_state

router = APIRouter(prefix="/v1", tags=["models"], responses=ERROR_RESPONSES)

VersionPin = Annotated[
    str | None,
    Header(alias="X-Model-Version", description="Pin the model version that must answer."),
]


@router.post("/classify", response_model=ClassifyAnswer, summary="Classify texts")
async def classify(body: ClassifyBody, request: Request, pin: VersionPin = None) -> object:
    state = gateway_state(request)
    admit()
    target = choose_version(state.backends, "classifier", body.model, pin)
    timeout_s = time_budget_s(request, state.settings.request_timeout_s)
    trace = request_context.current().trace
    reply = await call_backend(
        "classifier",
        state.backends.classifier.classify(
            body.all_texts(),
            model=target.model,
            version=target.version,
            top_k=body.top_k,
            request_id=trace.request_id,
            timeout_s=timeout_s,
            metadata=trace.grpc_metadata(),
        ),
    )
    request_context.current().answered_by(reply.model, reply.version)
    answer = ClassifyAnswer(
        model=reply.model,
        version=reply.version,
        request_id=trace.request_id,
        results=[
            Classification(labels=[LabelScore(label=s.label, score=s.score) for s in result.labels])
            for result in reply.results
        ],
    )
    return json_answer(answer)


@router.post("/ner", response_model=NerAnswer, summary="Find named entities in texts")
async def ner(body: NerBody, request: Request, pin: VersionPin = None) -> object:
    state = gateway_state(request)
    admit()
    target = choose_version(state.backends, "ner", body.model, pin)
    timeout_s = time_budget_s(request, state.settings.request_timeout_s)
    trace = request_context.current().trace
    reply = await call_backend(
        "ner",
        state.backends.ner.extract_entities(
            body.all_texts(),
            model=target.model,
            version=target.version,
            request_id=trace.request_id,
            timeout_s=timeout_s,
            metadata=trace.grpc_metadata(),
        ),
    )
    request_context.current().answered_by(reply.model, reply.version)
    answer = NerAnswer(
        model=reply.model,
        version=reply.version,
        request_id=trace.request_id,
        results=[
            EntityList(
                entities=[
                    Entity(label=e.label, score=e.score, start=e.start, end=e.end, text=e.text)
                    for e in result.entities
                ]
            )
            for result in reply.results
        ],
    )
    return json_answer(answer)
