"""``/v1/admin/keys``: make, list and revoke API keys (the admin role only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.access.keys import ROLES
from gateway.errors.refusals import InvalidArgument, NotFound
from gateway.errors.validation import validation_message
from gateway.limits.tiers import TierLimits
from gateway.routes.bodies import documented, read_body
from gateway.routes.deps import Admin, State
from gateway.routes.responses import CALLER, JSON_BODY, refusals
from gateway.routes.schemas import Integer

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class NewKey(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"owner": "team-search", "role": "client", "tier": "pro"}]},
    )
    owner: str = Field(min_length=1, max_length=200, description="Who the key is for.")
    role: str = Field("client", description="client, operator or admin.")
    tier: str = Field("free", description="A configured tier: free, pro, enterprise.")
    limits: dict[str, Integer | None] = Field(
        default_factory=dict, description="Overrides of the tier's limits for this key."
    )


class KeyInfo(BaseModel):
    id: str
    owner: str
    role: str
    tier: str
    created_at: float
    revoked: bool
    limits: dict[str, int | None]


class CreatedKey(KeyInfo):
    key: str = Field(description="The key itself: shown this once, never stored.")


class KeyList(BaseModel):
    keys: list[KeyInfo]


@router.post(
    "/keys",
    response_model=CreatedKey,
    status_code=201,
    summary="Make an API key",
    responses=refusals(*CALLER, *JSON_BODY),
    openapi_extra=documented(NewKey, pin=False),
)
async def create_key(request: Request, state: State, caller: Admin) -> CreatedKey:
    wanted = await read_body(request, NewKey)
    if wanted.role not in ROLES:
        raise InvalidArgument(f"role: one of {', '.join(ROLES)}")
    if wanted.tier not in state.settings.tiers:
        known = ", ".join(state.settings.tiers)
        raise InvalidArgument(f"tier: one of {known}")
    try:
        TierLimits.model_validate(state.settings.tiers[wanted.tier].model_dump() | wanted.limits)
    except ValidationError as error:
        message = validation_message(error.errors(), prefix="limits")
        raise InvalidArgument(message) from None
    record, key = await state.keys.create(wanted.owner, wanted.role, wanted.tier, wanted.limits)
    return CreatedKey(key=key, **record.public())


@router.get(
    "/keys",
    response_model=KeyList,
    summary="List API keys (never the keys)",
    responses=refusals(*CALLER),
)
async def list_keys(state: State, caller: Admin) -> KeyList:
    return KeyList(keys=[KeyInfo(**record.public()) for record in await state.keys.list()])


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    responses=refusals(*CALLER, NotFound),
)
async def revoke_key(key_id: str, state: State, caller: Admin) -> None:
    if not await state.keys.revoke(key_id):
        raise NotFound(f"no key {key_id!r}")
