"""Routes for the account's suppression list."""

from datetime import datetime
from typing import Annotated
from urllib.parse import unquote
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import Field

from smsplatform.accounts import permissions
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import CursorParam, Limit, PageResponse, RequestModel, ResponseModel, cursor_from
from smsplatform.api.resolver import BEARER
from smsplatform.contacts import contacts, opt_outs, phones
from smsplatform.core import db, pagination


class OptOutRequest(RequestModel):
    phone_number: Annotated[str, Field(min_length=3, max_length=32)]
    reason: Annotated[str | None, Field(max_length=500)] = None


class OptOutResponse(ResponseModel):
    id: UUID
    phone_number: str
    source: str
    reason: str | None
    created_at: datetime


def opt_outs_routes() -> Router:
    router = Router()

    @router.get("/v1/opt-outs", tags=["Opt-outs"], summary="The suppression list, newest first", security=BEARER)
    def list_all(limit: Limit = pagination.DEFAULT_LIMIT, cursor: CursorParam = None) -> PageResponse[OptOutResponse]:
        principal = caller(router, permissions.CONTACTS_READ)
        with db.transaction() as conn:
            page = opt_outs.list_opt_outs(conn, principal.user_id, limit, cursor_from(cursor))
        return PageResponse(data=[OptOutResponse.model_validate(o) for o in page.items], next_cursor=page.next_cursor)

    @router.post(
        "/v1/opt-outs",
        tags=["Opt-outs"],
        summary="Suppress a number: it is never sent to again",
        description="201 when the number is new to the list, 200 when it was already on it.",
        security=BEARER,
    )
    def add(body: Annotated[OptOutRequest, Body()]) -> Response[str]:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            region = contacts.account_region(conn, principal.user_id)
            number = phones.normalise_e164(body.phone_number, region)
            entry, created = opt_outs.add_opt_out(
                conn, principal.user_id, number, request_meta(router), reason=body.reason
            )
        return Response(
            status_code=201 if created else 200,
            content_type="application/json",
            body=OptOutResponse.model_validate(entry).model_dump_json(),
        )

    @router.delete(
        "/v1/opt-outs/<phone_number>",
        tags=["Opt-outs"],
        summary="Take a number off the list (URL-encode the +)",
        security=BEARER,
    )
    def remove(phone_number: str) -> Response[None]:
        principal = caller(router, permissions.CONTACTS_WRITE)
        raw = unquote(phone_number).strip()
        number = phones.normalise_e164(raw if raw.startswith("+") else f"+{raw}")
        with db.transaction() as conn:
            opt_outs.remove_opt_out(conn, principal.user_id, number, request_meta(router))
        return Response(status_code=204)

    return router
