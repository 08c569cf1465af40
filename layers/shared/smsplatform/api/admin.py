"""Operator routes: every account, and changes of status and role."""

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, Field

from smsplatform.accounts import accounts, permissions
from smsplatform.accounts.accounts import AccountStatus
from smsplatform.accounts.permissions import Role
from smsplatform.api.accounts import UserResponse
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import CursorParam, Limit, PageResponse, RequestModel, UpdateRequestModel, cursor_from
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

    return router
