"""Routes for exports: an account's messages as a gzip CSV, built in the background, fetched by URL."""

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import AwareDatetime, BaseModel, Field

from smsplatform.accounts import permissions
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import RequestModel
from smsplatform.api.resolver import BEARER
from smsplatform.core import db, queues
from smsplatform.core.config import get_settings
from smsplatform.core.errors import FieldError, InvalidInputError
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import ExportRequested
from smsplatform.sending import exports
from smsplatform.sending.messages import MessageStatus


class ExportRequest(RequestModel):
    kind: Literal["messages"]
    campaign_id: UUID | None = None
    status: MessageStatus | None = None
    since: Annotated[AwareDatetime | None, Field(description="Messages created from then on")] = None
    until: Annotated[AwareDatetime | None, Field(description="Messages created before then")] = None


class ExportAccepted(BaseModel):
    export_id: UUID
    status: exports.ExportStatus


class ExportResponse(BaseModel):
    export_id: UUID
    kind: str
    status: exports.ExportStatus
    rows: Annotated[int, Field(description="Rows written so far; all of them once completed")]
    bytes: int | None
    url: Annotated[str | None, Field(description=f"A presigned GET of the gzip CSV ({exports.HEADER})")] = None
    expires_at: Annotated[datetime | None, Field(description="When the URL stops working")] = None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None


def exports_routes() -> Router:
    router = Router()

    @router.post(
        "/v1/exports",
        status_code=202,
        tags=["Exports"],
        summary="Export the account's messages as a gzip CSV",
        description="Built in the background; GET /v1/exports/{export_id} shows its progress and, once completed, "
        "a presigned URL.",
        security=BEARER,
    )
    def create_export(body: Annotated[ExportRequest, Body()]) -> Response[str]:
        principal = caller(router, permissions.MESSAGES_READ)
        if body.since and body.until and body.since >= body.until:
            raise InvalidInputError("since is before until.", errors=[FieldError("until", "is not after since")])
        filters = exports.ExportFilters(body.campaign_id, body.status, body.since, body.until)
        with db.transaction() as conn:
            created = exports.create(conn, principal.user_id, filters, request_meta(router))
        try:
            queues.send("export", ExportRequested(export_id=created.id))
        except Exception:  # the export stays queued; the sweep fails it in time, and the caller can ask again
            logger.exception("export not announced", extra={"export_id": str(created.id)})
        accepted = ExportAccepted(export_id=created.id, status=created.status)
        return Response(status_code=202, content_type="application/json", body=accepted.model_dump_json())

    @router.get("/v1/exports/<export_id>", tags=["Exports"], summary="An export's progress and URL", security=BEARER)
    def get_export(export_id: UUID) -> ExportResponse:
        principal = caller(router, permissions.MESSAGES_READ)
        with db.transaction() as conn:
            found = exports.get(conn, principal.user_id, export_id)
        url, expires_at = exports.download_url(found, get_settings(), datetime.now(UTC))
        return ExportResponse(
            export_id=found.id,
            kind=found.kind,
            status=found.status,
            rows=found.rows,
            bytes=found.bytes,
            url=url,
            expires_at=expires_at,
            error_message=found.error_message,
            created_at=found.created_at,
            finished_at=found.finished_at,
        )

    return router
