"""The audit trail, read-only: the caller's own, or any account's for operators."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from smsplatform.accounts import permissions
from smsplatform.api.context import caller
from smsplatform.api.models import CursorParam, Limit, PageResponse, ResponseModel, cursor_from
from smsplatform.api.resolver import BEARER
from smsplatform.core import audit, db, pagination
from smsplatform.core.errors import NotFoundError


class AuditEntryResponse(ResponseModel):
    id: UUID
    user_id: UUID | None
    action: str
    details: dict[str, Any]
    ip_address: str | None
    user_agent: str | None
    created_at: datetime


def audit_log_routes() -> Router:
    router = Router()

    @router.get(
        "/v1/audit-logs",
        tags=["Accounts"],
        summary="Audit trail, newest first",
        description="The caller's own entries; operators see every account's, or one account's with user_id.",
        security=BEARER,
    )
    def list_audit_logs(
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
        user_id: Annotated[UUID | None, Query()] = None,
        action: Annotated[str | None, Query(max_length=100)] = None,
    ) -> PageResponse[AuditEntryResponse]:
        principal = caller(router)
        owner: UUID | None = principal.user_id
        if permissions.AUDIT_ADMIN in principal.permissions:
            owner = user_id  # None: every account's
        else:
            principal.require(permissions.AUDIT_READ)
            if user_id is not None and user_id != principal.user_id:
                raise NotFoundError("No such user.")
        with db.transaction() as conn:
            page = audit.list_entries(conn, owner, limit, cursor_from(cursor), action)
        return PageResponse(
            data=[AuditEntryResponse.model_validate(e) for e in page.items], next_cursor=page.next_cursor
        )

    return router
