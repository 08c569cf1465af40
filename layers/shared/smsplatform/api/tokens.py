"""Routes for the caller's API tokens."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import AwareDatetime, BaseModel, Field

from smsplatform.accounts import permissions, tokens
from smsplatform.accounts.tokens import ApiToken, TokenStatus
from smsplatform.api.context import caller, request_meta, withhold_from_replay
from smsplatform.api.models import CursorParam, Limit, PageResponse, RequestModel, cursor_from
from smsplatform.api.resolver import BEARER
from smsplatform.core import db, pagination


class TokenCreateRequest(RequestModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    permissions: Annotated[list[str], Field(min_length=1, max_length=len(permissions.ALL))]
    expires_at: Annotated[AwareDatetime | None, Field(description="UTC offset required; omit for no expiry")] = None


class TokenResponse(BaseModel):
    id: UUID
    name: str
    prefix: Annotated[str, Field(description="The token's first characters, to recognise it by")]
    permissions: list[str]
    last_used: datetime | None
    expires_at: datetime | None
    created_at: datetime
    status: TokenStatus

    @classmethod
    def from_token(cls, token: ApiToken) -> "TokenResponse":
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.token_prefix,
            permissions=token.permissions,
            last_used=token.last_used,
            expires_at=token.expires_at,
            created_at=token.created_at,
            status=token.effective_status,
        )


class CreatedTokenResponse(TokenResponse):
    token: Annotated[str, Field(description="The secret: shown this once, store it now")]


def tokens_routes() -> Router:
    router = Router()

    @router.post("/v1/tokens", status_code=201, tags=["API tokens"], summary="Create an API token", security=BEARER)
    def create(body: Annotated[TokenCreateRequest, Body()]) -> CreatedTokenResponse:
        principal = caller(router, permissions.TOKENS_WRITE)
        with db.transaction() as conn:
            token, secret = tokens.create_token(
                conn,
                principal.user_id,
                principal.permissions,
                name=body.name,
                requested=body.permissions,
                expires_at=body.expires_at,
                meta=request_meta(router),
            )
        withhold_from_replay(router)
        return CreatedTokenResponse(**TokenResponse.from_token(token).model_dump(), token=secret)

    @router.get("/v1/tokens", tags=["API tokens"], summary="List the caller's API tokens", security=BEARER)
    def list_tokens(limit: Limit = pagination.DEFAULT_LIMIT, cursor: CursorParam = None) -> PageResponse[TokenResponse]:
        principal = caller(router, permissions.TOKENS_WRITE)
        with db.transaction() as conn:
            page = tokens.list_tokens(conn, principal.user_id, limit, cursor_from(cursor))
        return PageResponse(data=[TokenResponse.from_token(t) for t in page.items], next_cursor=page.next_cursor)

    @router.delete("/v1/tokens/<token_id>", tags=["API tokens"], summary="Revoke an API token", security=BEARER)
    def revoke(token_id: UUID) -> Response[None]:
        principal = caller(router, permissions.TOKENS_WRITE)
        with db.transaction() as conn:
            tokens.revoke_token(conn, principal.user_id, token_id, request_meta(router))
        return Response(status_code=204)

    return router
