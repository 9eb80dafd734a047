"""``POST /v1/classify`` and ``POST /v1/ner``: results per text, in order."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway import request_context
from gateway.bodies import documented, read_body, version_pin
from gateway.pipeline import call_backend, plan_call
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

router = APIRouter(prefix="/v1", tags=["models"], responses=ERROR_RESPONSES)


@router.post(
    "/classify",
    response_model=ClassifyAnswer,
    summary="Classify texts",
    openapi_extra=documented(ClassifyBody),
)
async def classify(request: Request) -> object:
    body = await read_body(request, ClassifyBody)
    plan = await plan_call(request, "classifier", body.model, version_pin(request))
    reply = await call_backend(
        "classifier",
        plan.state.backends.classifier.classify(
            body.all_texts(),
            model=plan.target.model,
            version=plan.target.version,
            top_k=body.top_k,
            request_id=plan.request_id,
            timeout_s=plan.timeout_s,
            metadata=plan.metadata,
        ),
    )
    request_context.current().answered_by(reply.model, reply.version)
    answer = ClassifyAnswer(
        model=reply.model,
        version=reply.version,
        request_id=plan.request_id,
        results=[
            Classification(labels=[LabelScore(label=s.label, score=s.score) for s in result.labels])
            for result in reply.results
        ],
    )
    return json_answer(answer)


@router.post(
    "/ner",
    response_model=NerAnswer,
    summary="Find named entities in texts",
    openapi_extra=documented(NerBody),
)
async def ner(request: Request) -> object:
    body = await read_body(request, NerBody)
    plan = await plan_call(request, "ner", body.model, version_pin(request))
    reply = await call_backend(
        "ner",
        plan.state.backends.ner.extract_entities(
            body.all_texts(),
            model=plan.target.model,
            version=plan.target.version,
            request_id=plan.request_id,
            timeout_s=plan.timeout_s,
            metadata=plan.metadata,
        ),
    )
    request_context.current().answered_by(reply.model, reply.version)
    answer = NerAnswer(
        model=reply.model,
        version=reply.version,
        request_id=plan.request_id,
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
