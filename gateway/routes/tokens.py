"""Bearer tokens: an API key traded for a short-lived access token (``POST
/v1/auth/token``), a token revoking itself (``POST /v1/auth/revoke``: logging out), and an
admin revoking any token by its ``jti`` (``POST /v1/admin/tokens/revoke``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.access.auth import credential_of
from gateway.access.bearer import BearerTokens
from gateway.edge import request_context
from gateway.errors.refusals import InvalidArgument, NotFound, PermissionDenied
from gateway.routes.bodies import documented, read_body
from gateway.routes.deps import Admin, State
from gateway.routes.responses import CALLER, JSON_BODY, refusals

router = APIRouter(tags=["auth"])


class AccessToken(BaseModel):
    access_token: str = Field(description="A JWT to send as `Authorization: Bearer ...`.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme's name)
    expires_in: int = Field(description="Seconds the token is valid for.")


class RevokeToken(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"jti": "5f0c2a", "exp": 1767225600, "reason": "leak"}]},
    )
    jti: str = Field(min_length=1, max_length=512, description="The token's `jti` claim.")
    exp: float | None = Field(
        None,
        ge=0,
        le=2**53,
        allow_inf_nan=False,
        description="The token's `exp` (epoch seconds): the revocation is kept until then;"
        " unset: for the longest token lifetime the gateway accepts.",
    )
    reason: str = Field("", max_length=500, description="Why, for the audit trail.")


class RevokedToken(BaseModel):
    jti: str
    ttl_s: int = Field(description="Seconds the revocation is kept (until the token expires).")


def _tokens(state: State) -> BearerTokens:
    if state.auth.tokens is None:
        raise NotFound("this gateway accepts no bearer tokens")
    return state.auth.tokens


@router.post(
    "/v1/auth/token",
    response_model=AccessToken,
    summary="Trade an API key for a short-lived access token",
    responses=refusals(*CALLER, InvalidArgument, NotFound),
    description="Send the API key (`Authorization: Bearer sy_...` or `X-API-Key`); the"
    " token carries the key's caller, roles, tier and limits. Refresh: trade again."
    " Revoking the key stops new trades; tokens already issued last until they expire"
    " or are revoked.",
)
async def exchange(request: Request, response: Response, state: State) -> AccessToken:
    tokens = _tokens(state)
    if tokens.issued is None:
        raise NotFound("token exchange is off: the gateway has no token signing key")
    credential = credential_of(request)
    if credential and tokens.looks_like_token(credential):
        raise InvalidArgument("send an API key to trade for a token, not a token")
    caller = await state.auth.authenticate(request, "client")
    request_context.current().caller = caller.id
    if not caller.id.startswith("key:"):
        raise PermissionDenied("only an API key's caller can be given a token")
    # An exchange counts as a request: a key cannot mint tokens faster than it may call.
    state.limits.enforce(caller, await state.limits.count_request(caller))
    issued = tokens.issued.issue(caller.id, caller.owner, caller.roles, caller.tier, caller.limits)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return AccessToken(access_token=issued.token, expires_in=issued.expires_in)


@router.post(
    "/v1/auth/revoke",
    status_code=204,
    summary="Revoke the bearer token sent (log out)",
    responses=refusals(*CALLER, InvalidArgument, NotFound),
    description="Send the token itself (`Authorization: Bearer <token>`): from now on every"
    " replica refuses it. A token without a `jti` claim cannot be revoked.",
)
async def revoke_own(request: Request, state: State) -> None:
    tokens = _tokens(state)
    caller = await state.auth.authenticate(request, "client")
    request_context.current().caller = caller.id
    credential = credential_of(request) or ""
    if not tokens.looks_like_token(credential):
        raise InvalidArgument(
            "send the token to revoke (an API key is revoked with DELETE /v1/admin/keys/{id})"
        )
    if caller.token_id is None:
        raise InvalidArgument("the token has no 'jti' claim, so it cannot be revoked")
    await tokens.revoke(
        caller.token_id, BearerTokens.expiry_of(credential), "revoked by its bearer"
    )


@router.post(
    "/v1/admin/tokens/revoke",
    response_model=RevokedToken,
    tags=["admin"],
    summary="Revoke bearer tokens by their jti",
    responses=refusals(*CALLER, *JSON_BODY, NotFound),
    openapi_extra=documented(RevokeToken, pin=False),
)
async def revoke_by_id(request: Request, state: State, caller: Admin) -> RevokedToken:
    tokens = _tokens(state)
    wanted = await read_body(request, RevokeToken)
    ttl_s = await tokens.revoke(wanted.jti, wanted.exp, wanted.reason or f"by {caller.id}")
    return RevokedToken(jti=wanted.jti, ttl_s=ttl_s)
