"""``/v1/admin/backends``: every backend address the gateway calls, and the ones operators
add or remove at run time (kept in Redis, followed by every replica; the operator role).
An added address takes calls once it lists a version and answers its health check."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.backends.endpoints import SERVICES
from gateway.errors.refusals import AlreadyExists, InvalidArgument, NotFound
from gateway.routes.bodies import documented, read_body
from gateway.routes.deps import Actor, Operator, State
from gateway.routes.responses import CALLER, JSON_BODY, refusals
from gateway.routing.store import AddedBackend, audit_entry
from gateway.state import GatewayState

router = APIRouter(prefix="/v1/admin/backends", tags=["backends"])


class NewBackend(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"service": "classifier", "address": "10.0.0.7:50051"}]},
    )
    service: str = Field(description="classifier, ner or summarizer.")
    address: str = Field(min_length=3, max_length=300, description="host:port")
    reason: str = Field("", max_length=500)


class BackendList(BaseModel):
    routing_revision: int
    backends: list[dict[str, Any]]


def _listing(state: GatewayState) -> BackendList:
    return BackendList(
        routing_revision=state.router.revision,
        backends=[
            {
                "service": e.service,
                "address": e.address,
                "added": e.added,
                "healthy": e.healthy,
                "versions": sorted(
                    f"{info.name} {v.version}" for info in e.models for v in info.versions
                ),
            }
            for e in state.backends.all()
        ],
    )


def _checked(service: str, address: str) -> None:
    if service not in SERVICES:
        raise InvalidArgument(f"service: one of {', '.join(SERVICES)}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"address {address!r}: give host:port")


@router.get(
    "",
    response_model=BackendList,
    summary="Every backend, its health and versions",
    responses=refusals(*CALLER),
)
async def list_backends(state: State, caller: Operator) -> BackendList:
    return _listing(state)


@router.post(
    "",
    response_model=BackendList,
    status_code=201,
    summary="Add a backend address (every replica follows)",
    responses=refusals(*CALLER, *JSON_BODY, AlreadyExists),
    openapi_extra=documented(NewBackend, pin=False),
)
async def add_backend(request: Request, state: State, actor: Actor) -> BackendList:
    body = await read_body(request, NewBackend)
    _checked(body.service, body.address)
    if body.address in state.settings.backends(body.service):
        raise AlreadyExists(f"{body.address} is a configured backend already")
    backend = AddedBackend(body.service, body.address, actor, time.time())
    subject = f"backend {body.service} {body.address}"
    entry = audit_entry(actor, "add", subject, body.reason, None, backend.__dict__)
    if not await state.routing.add_backend(backend, entry):
        raise AlreadyExists(f"{body.address} was added already")
    await state.router.refresh()
    return _listing(state)


@router.delete(
    "/{service}/{address}",
    response_model=BackendList,
    summary="Remove an added backend",
    responses=refusals(*CALLER, InvalidArgument, NotFound),
)
async def remove_backend(service: str, address: str, state: State, actor: Actor) -> BackendList:
    _checked(service, address)
    added = next(
        (b for b in state.router.state.backends if (b.service, b.address) == (service, address)),
        None,
    )
    backend = added or AddedBackend(service, address, "", 0.0)
    entry = audit_entry(actor, "remove", f"backend {service} {address}", "", backend.__dict__, None)
    if not await state.routing.remove_backend(backend, entry):
        raise NotFound(f"{service} {address} was not added at run time")
    await state.router.refresh()
    return _listing(state)
