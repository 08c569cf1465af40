"""Routes for contact groups and their members."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, Field

from smsplatform.accounts import permissions
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
from smsplatform.contacts import groups
from smsplatform.core import db, pagination
from smsplatform.core.errors import FieldError, InvalidInputError

GroupName = Annotated[str, Field(min_length=1, max_length=100)]
Description = Annotated[str, Field(max_length=1000)]


class GroupCreateRequest(RequestModel):
    name: GroupName
    description: Description | None = None


class GroupUpdateRequest(UpdateRequestModel):
    name: GroupName | None = None
    description: Description | None = None


class MembersRequest(RequestModel):
    contact_ids: Annotated[list[UUID], Field(min_length=1, max_length=groups.MAX_MEMBERS_PER_REQUEST)]


class MembersAddedResponse(BaseModel):
    added: Annotated[int, Field(description="Contacts that were not members before")]
    total_contacts: int


class GroupResponse(ResponseModel):
    id: UUID
    name: str
    description: str | None
    total_contacts: int
    created_at: datetime
    updated_at: datetime


def groups_routes() -> Router:
    router = Router()

    @router.post("/v1/groups", status_code=201, tags=["Groups"], summary="Create a group", security=BEARER)
    def create(body: Annotated[GroupCreateRequest, Body()]) -> GroupResponse:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            group = groups.create_group(conn, principal.user_id, body.name, body.description, request_meta(router))
        return GroupResponse.model_validate(group)

    @router.get("/v1/groups", tags=["Groups"], summary="List groups with their sizes", security=BEARER)
    def list_all(limit: Limit = pagination.DEFAULT_LIMIT, cursor: CursorParam = None) -> PageResponse[GroupResponse]:
        principal = caller(router, permissions.CONTACTS_READ)
        with db.transaction() as conn:
            page = groups.list_groups(conn, principal.user_id, limit, cursor_from(cursor))
        return PageResponse(data=[GroupResponse.model_validate(g) for g in page.items], next_cursor=page.next_cursor)

    @router.get("/v1/groups/<group_id>", tags=["Groups"], summary="A group", security=BEARER)
    def get(group_id: UUID) -> GroupResponse:
        principal = caller(router, permissions.CONTACTS_READ)
        with db.transaction() as conn:
            return GroupResponse.model_validate(groups.get_group(conn, principal.user_id, group_id))

    @router.patch("/v1/groups/<group_id>", tags=["Groups"], summary="Rename or describe a group", security=BEARER)
    def update(group_id: UUID, body: Annotated[GroupUpdateRequest, Body()]) -> GroupResponse:
        principal = caller(router, permissions.CONTACTS_WRITE)
        changes = body.model_dump(include=body.model_fields_set)
        if "name" in changes and changes["name"] is None:
            raise InvalidInputError("A group needs a name.", errors=[FieldError("name", "cannot be null")])
        with db.transaction() as conn:
            group = groups.update_group(conn, principal.user_id, group_id, changes, request_meta(router))
        return GroupResponse.model_validate(group)

    @router.delete(
        "/v1/groups/<group_id>", tags=["Groups"], summary="Delete a group (its contacts stay)", security=BEARER
    )
    def delete(group_id: UUID) -> Response[None]:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            groups.delete_group(conn, principal.user_id, group_id, request_meta(router))
        return Response(status_code=204)

    @router.post("/v1/groups/<group_id>/members", tags=["Groups"], summary="Add contacts to a group", security=BEARER)
    def add_members(group_id: UUID, body: Annotated[MembersRequest, Body()]) -> MembersAddedResponse:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            added = groups.add_members(conn, principal.user_id, group_id, body.contact_ids, request_meta(router))
            total = groups.get_group(conn, principal.user_id, group_id).total_contacts
        return MembersAddedResponse(added=added, total_contacts=total)

    @router.delete(
        "/v1/groups/<group_id>/members/<contact_id>",
        tags=["Groups"],
        summary="Remove a contact from a group",
        security=BEARER,
    )
    def remove_member(group_id: UUID, contact_id: UUID) -> Response[None]:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            groups.remove_member(conn, principal.user_id, group_id, contact_id, request_meta(router))
        return Response(status_code=204)

    return router
