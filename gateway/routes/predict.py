"""``POST /v1/classify`` and ``POST /v1/ner``: results per text, in order, each from the
prediction cache when it holds one (``X-Cache``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.backends import rpc_names
from gateway.backends.coalescer import Metadata
from gateway.cache.prediction import cached_results
from gateway.edge import request_context
from gateway.pipeline import ModelCall, PlannedCall, call_backend, plan_call, stable_call
from gateway.routes.bodies import (
    PINNED_PREFIX,
    documented,
    documented_pinned,
    model_of,
    read_body,
    version_pin,
)
from gateway.routes.deps import State
from gateway.routes.responses import CALLER, JSON_BODY, MODEL_CALL, json_answer, refusals
from gateway.routes.schemas import (
    Classification,
    ClassifyAnswer,
    ClassifyBody,
    Entity,
    EntityList,
    LabelScore,
    NerAnswer,
    NerBody,
)
from gateway.routes.shared_calls import (
    Answered,
    Reply,
    per_text,
    shared_call,
    version_of,
)
from switchyard.classifier.v1 import classifier_pb2
from switchyard.ner.v1 import ner_pb2

router = APIRouter(prefix="/v1", tags=["models"])

Classified = Answered[classifier_pb2.Classification]
Found = Answered[ner_pb2.EntityList]

REFUSALS = refusals(*CALLER, *JSON_BODY, *MODEL_CALL)


def note_cache(plan: PlannedCall, hits: int, texts: int) -> request_context.RequestRecord:
    """``X-Cache`` on the answer; when every text was a hit, the version that answered
    is the one the cache was asked for."""
    record = request_context.current()
    if hits == texts:
        record.answered_by(plan.target.model, plan.target.version)
    record.add_header("X-Cache", "HIT" if hits == texts else "MISS")
    return record


@router.post(
    "/classify",
    response_model=ClassifyAnswer,
    summary="Classify texts",
    responses=REFUSALS,
    openapi_extra=documented(ClassifyBody),
)
@router.post(
    PINNED_PREFIX + "/classify",
    response_model=ClassifyAnswer,
    summary="Classify texts with a pinned model version",
    responses=REFUSALS,
    openapi_extra=documented_pinned(ClassifyBody),
)
async def classify(request: Request, state: State) -> object:
    body = await read_body(request, ClassifyBody)
    model = model_of(request, body.model)
    texts = body.all_texts()
    call = ModelCall("classifier", model, version_pin(request), texts, f"top_k={body.top_k}")
    plan = await plan_call(request, state, call)

    async def send(texts: list[str], timeout_s: float, metadata: Metadata) -> list[Classified]:
        classifier = plan.endpoint.classifier
        reply = await classifier.classify(
            texts, top_k=body.top_k, timeout_s=timeout_s, metadata=metadata, **version_of(plan)
        )
        return per_text(reply)

    async def compute(positions: list[int] | None) -> tuple[list[Classification], str]:
        wanted = texts if positions is None else [texts[p] for p in positions]
        answered = await call_backend(
            "classifier",
            shared_call(plan, rpc_names.CLASSIFY, body.top_k, wanted, send),
        )
        reply = Reply(answered)
        request_context.current().answered_by(reply.model, reply.version)
        shadow = stable_call(plan, "classifier", reply.version)
        plan.state.shadow.classify(shadow, wanted, reply.results)
        results = [
            Classification(labels=[LabelScore(label=s.label, score=s.score) for s in r.labels])
            for r in reply.results
        ]
        return results, reply.version

    results, hits, _ = await cached_results(
        plan.state.cache, plan.cache_keys, plan.target.version, Classification, compute, plan.cached
    )
    record = note_cache(plan, hits, len(texts))
    record.labels = [r.labels[0].label for r in results if r.labels]
    return json_answer(
        ClassifyAnswer(
            model=record.model, version=record.version, request_id=plan.request_id, results=results
        )
    )


@router.post(
    "/ner",
    response_model=NerAnswer,
    summary="Find named entities in texts",
    responses=REFUSALS,
    openapi_extra=documented(NerBody),
)
@router.post(
    PINNED_PREFIX + "/ner",
    response_model=NerAnswer,
    summary="Find named entities with a pinned model version",
    responses=REFUSALS,
    openapi_extra=documented_pinned(NerBody),
)
async def ner(request: Request, state: State) -> object:
    body = await read_body(request, NerBody)
    model = model_of(request, body.model)
    texts = body.all_texts()
    plan = await plan_call(request, state, ModelCall("ner", model, version_pin(request), texts))

    async def send(texts: list[str], timeout_s: float, metadata: Metadata) -> list[Found]:
        ner = plan.endpoint.ner
        reply = await ner.extract_entities(
            texts, timeout_s=timeout_s, metadata=metadata, **version_of(plan)
        )
        return per_text(reply)

    async def compute(positions: list[int] | None) -> tuple[list[EntityList], str]:
        wanted = texts if positions is None else [texts[p] for p in positions]
        answered = await call_backend(
            "ner", shared_call(plan, rpc_names.EXTRACT_ENTITIES, 0, wanted, send)
        )
        reply = Reply(answered)
        results = [
            EntityList(
                entities=[
                    Entity(label=e.label, score=e.score, start=e.start, end=e.end, text=e.text)
                    for e in r.entities
                ]
            )
            for r in reply.results
        ]
        request_context.current().answered_by(reply.model, reply.version)
        plan.state.shadow.ner(stable_call(plan, "ner", reply.version), wanted, reply.results)
        return results, reply.version

    results, hits, _ = await cached_results(
        plan.state.cache, plan.cache_keys, plan.target.version, EntityList, compute, plan.cached
    )
    record = note_cache(plan, hits, len(texts))
    return json_answer(
        NerAnswer(
            model=record.model, version=record.version, request_id=plan.request_id, results=results
        )
    )
