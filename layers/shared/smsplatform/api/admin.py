"""Operator routes: every account, and changes of status and role."""

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import unquote
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, Field

from smsplatform.accounts import accounts, permissions, sender_ids
from smsplatform.accounts.accounts import AccountStatus
from smsplatform.accounts.permissions import Role
from smsplatform.api.accounts import UserResponse
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import (
    CursorParam,
    Limit,
    PageResponse,
    RequestModel,
    ResponseModel,
    UpdateRequestModel,
    cursor_from,
)
from smsplatform.api.resolver import BEARER
from smsplatform.core import db, pagination
from smsplatform.core.errors import InvalidInputError
from smsplatform.providers.registry import ProviderName
from smsplatform.sending import holds, routing


class ProviderRouteRequest(RequestModel):
    route: Annotated[
        list[ProviderName] | None,
        Field(min_length=1, max_length=5, description="Tried in order; null returns to the platform default"),
    ]


class ProviderRouteResponse(BaseModel):
    user_id: UUID
    route: list[str] | None


class AccountChangeRequest(UpdateRequestModel):
    account_status: AccountStatus | None = None
    role: Role | None = None


class SenderIdRequest(RequestModel):
    sender_id: Annotated[str, Field(min_length=1, max_length=20)]
    kind: Literal["alphanumeric", "number", "short_code"]
    default: bool = False


class SenderIdResponse(ResponseModel):
    sender_id: str
    kind: str
    default: bool
    created_at: datetime


class SenderIdListResponse(ResponseModel):
    data: list[SenderIdResponse]


def admin_routes() -> Router:
    router = Router()

    @router.get("/v1/users", tags=["Operators"], summary="List accounts, newest first", security=BEARER)
    def list_users(
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
        status: Annotated[AccountStatus | None, Query()] = None,
        role: Annotated[Role | None, Query()] = None,
    ) -> PageResponse[UserResponse]:
        caller(router, permissions.USERS_ADMIN)
        with db.transaction() as conn:
            page = accounts.list_accounts(conn, limit, cursor_from(cursor), account_status=status, role=role)
        return PageResponse(data=[UserResponse.model_validate(u) for u in page.items], next_cursor=page.next_cursor)

    @router.patch(
        "/v1/users/<user_id>", tags=["Operators"], summary="Suspend, reactivate, close or change role", security=BEARER
    )
    def change_user(user_id: UUID, body: Annotated[AccountChangeRequest, Body()]) -> UserResponse:
        principal = caller(router, permissions.USERS_ADMIN)
        if body.account_status is None and body.role is None:
            raise InvalidInputError("Give account_status, role or both.")
        with db.transaction() as conn:
            before = accounts.get_user(conn, user_id)
            user = accounts.change_account(
                conn,
                principal.user_id,
                user_id,
                request_meta(router),
                account_status=body.account_status,
                role=body.role,
            )
            resumed = holds.apply(conn, user_id, before.account_status, user.account_status)
        holds.announce(resumed)  # committed: the account is active again
        return UserResponse.model_validate(user)

    @router.put(
        "/v1/users/<user_id>/providers",
        tags=["Operators"],
        summary="Route an account's messages through these providers, in order",
        description="A transient failure with one provider sends the message to the next at once.",
        security=BEARER,
    )
    def set_provider_route(user_id: UUID, body: Annotated[ProviderRouteRequest, Body()]) -> ProviderRouteResponse:
        principal = caller(router, permissions.USERS_ADMIN)
        if body.route is not None and len(set(body.route)) != len(body.route):
            raise InvalidInputError("A provider appears twice in the route.")
        with db.transaction() as conn:
            route = routing.set_route(
                conn, principal.user_id, user_id, list(body.route) if body.route else None, request_meta(router)
            )
        return ProviderRouteResponse(user_id=user_id, route=route)

    @router.post(
        "/v1/users/<user_id>/sender-ids",
        status_code=201,
        tags=["Operators"],
        summary="Register a sender id an account may send as",
        description="Numbers are normalised to E.164; a number or short code belongs to one account (409).",
        security=BEARER,
    )
    def add_sender_id(user_id: UUID, body: Annotated[SenderIdRequest, Body()]) -> SenderIdResponse:
        principal = caller(router, permissions.USERS_ADMIN)
        with db.transaction() as conn:
            added = sender_ids.add(
                conn, principal.user_id, user_id, body.sender_id, body.kind, body.default, request_meta(router)
            )
        return SenderIdResponse.model_validate(added)

    @router.get(
        "/v1/sender-ids",
        tags=["Accounts"],
        summary="The sender ids the caller's account may send as",
        description="Operators may name another account with user_id.",
        security=BEARER,
    )
    def list_sender_ids(user_id: Annotated[UUID | None, Query()] = None) -> SenderIdListResponse:
        principal = caller(router)
        owner = principal.user_id
        if user_id is not None and user_id != principal.user_id:
            principal.require(permissions.USERS_ADMIN)
            owner = user_id
        with db.transaction() as conn:
            found = sender_ids.list_for(conn, owner)
        return SenderIdListResponse(data=[SenderIdResponse.model_validate(identity) for identity in found])

    @router.delete(
        "/v1/users/<user_id>/sender-ids/<sender_id>",
        tags=["Operators"],
        summary="Withdraw a sender id from an account",
        security=BEARER,
    )
    def remove_sender_id(user_id: UUID, sender_id: str) -> Response[None]:
        principal = caller(router, permissions.USERS_ADMIN)
        with db.transaction() as conn:
            sender_ids.remove(conn, principal.user_id, user_id, unquote(sender_id), request_meta(router))
        return Response(status_code=204)

    return router
