"""Routes for contacts, contact imports and a contact's conversation."""

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, EmailStr, Field

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
from smsplatform.contacts import contacts, phones
from smsplatform.contacts.contacts import ContactStatus
from smsplatform.contacts.imports import jobs
from smsplatform.contacts.imports.jobs import ContactImport, ImportSource, ImportStatus, RowError
from smsplatform.contacts.imports.runs import MAX_BODY_BYTES
from smsplatform.core import db, pagination, storage
from smsplatform.core.config import get_settings
from smsplatform.core.errors import (
    FieldError,
    InvalidInputError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from smsplatform.sending import history, windows
from smsplatform.sending.history import Direction
from smsplatform.sending.keywords import Keyword

Name = Annotated[str, Field(min_length=1, max_length=50)]
Region = Annotated[str, Field(min_length=2, max_length=2, description="ISO 3166 alpha-2, e.g. GB")]
CustomValue = str | int | float | bool | None


TimeZone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="IANA name, e.g. Europe/London: a campaign's recipient-time sending window reads it "
        "(without it, the zones of the number)",
    ),
]


class ContactCreateRequest(RequestModel):
    phone_number: Annotated[str, Field(min_length=3, max_length=32)]
    country_code: Region | None = None
    timezone: TimeZone | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    email: Annotated[EmailStr, Field(max_length=120)] | None = None
    custom_fields: Annotated[dict[str, CustomValue], Field(default_factory=dict)]
    group_ids: Annotated[list[UUID], Field(max_length=100, default_factory=list)]


class ContactUpdateRequest(UpdateRequestModel):
    phone_number: Annotated[str, Field(min_length=3, max_length=32)] | None = None
    country_code: Annotated[Region | None, Field(description="Region to read a new phone_number in")] = None
    timezone: TimeZone | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    email: Annotated[EmailStr, Field(max_length=120)] | None = None
    custom_fields: dict[str, CustomValue] | None = None
    status: ContactStatus | None = None


class ContactResponse(ResponseModel):
    id: UUID
    phone_number: str
    country_code: str | None
    timezone: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    custom_fields: dict[str, Any]
    status: str
    group_ids: list[UUID]
    created_at: datetime
    updated_at: datetime


class ImportUploadRequest(RequestModel):
    upload: Literal[True]
    group_id: UUID | None = None
    default_region: Region | None = None


class ImportRowError(BaseModel):
    row: Annotated[int, Field(description="Line number in the file; the header is line 1")]
    reason: str


class ImportResponse(BaseModel):
    import_id: UUID
    status: ImportStatus
    source: str
    group_id: UUID | None
    default_region: str | None
    total_rows: int
    processed_rows: int
    imported: int
    updated: int
    unchanged: int
    duplicates: Annotated[int, Field(description="Rows repeating a number found later in the file")]
    invalid: int
    ignored_columns: Annotated[
        list[str], Field(description="Columns that could not become custom fields (names must start with a letter)")
    ]
    error_message: str | None
    errors: Annotated[list[ImportRowError], Field(description="The first 1,000 skipped rows")]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    upload_url: Annotated[str | None, Field(description="PUT the CSV here (text/csv), once")] = None
    upload_expires_in: int | None = None

    @classmethod
    def from_import(cls, job: ContactImport, errors: list[RowError] | None = None) -> "ImportResponse":
        return cls(
            import_id=job.id,
            status=job.status,
            source=job.source,
            group_id=job.group_id,
            default_region=job.default_region,
            total_rows=job.total_rows,
            processed_rows=job.processed_rows,
            imported=job.imported,
            updated=job.updated,
            unchanged=job.unchanged,
            duplicates=job.duplicates,
            invalid=job.invalid,
            ignored_columns=job.ignored_columns,
            error_message=job.error_message,
            errors=[ImportRowError(row=e.line_number, reason=e.reason) for e in errors or []],
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


def _imports_bucket() -> str:
    bucket = get_settings().imports_bucket
    if not bucket:
        raise RuntimeError("SMS_IMPORTS_BUCKET is not configured")
    return bucket


class ConversationItemResponse(ResponseModel):
    direction: Direction
    id: Annotated[UUID, Field(description="A message id (outbound) or an inbound message id")]
    at: Annotated[datetime, Field(validation_alias="created_at", description="Written (outbound) or received")]
    from_: Annotated[str | None, Field(validation_alias="from_number", serialization_alias="from")]
    to: Annotated[str | None, Field(validation_alias="to_number")]
    body: str | None
    status: Annotated[str | None, Field(description="Outbound only")]
    keyword: Annotated[Keyword | None, Field(description="Inbound only")]
    campaign_id: UUID | None


def contacts_routes() -> Router:
    router = Router()

    @router.post("/v1/contacts", status_code=201, tags=["Contacts"], summary="Create a contact", security=BEARER)
    def create(body: Annotated[ContactCreateRequest, Body()]) -> ContactResponse:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            region = body.country_code or contacts.account_region(conn, principal.user_id)
            phone, number_region = phones.parse_for_field(body.phone_number, region, field="phone_number")
            contact = contacts.create_contact(
                conn,
                principal.user_id,
                request_meta(router),
                phone_number=phone,
                country_code=number_region,
                first_name=body.first_name,
                last_name=body.last_name,
                email=str(body.email) if body.email else None,
                custom_fields=body.custom_fields,
                group_ids=body.group_ids,
                timezone=windows.check_zone(body.timezone, "timezone") if body.timezone else None,
            )
        return ContactResponse.model_validate(contact)

    @router.get("/v1/contacts", tags=["Contacts"], summary="List contacts, newest first", security=BEARER)
    def list_all(
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
        group_id: Annotated[UUID | None, Query()] = None,
        status: Annotated[ContactStatus | None, Query()] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=50, description="Number or name prefix")] = None,
    ) -> PageResponse[ContactResponse]:
        principal = caller(router, permissions.CONTACTS_READ)
        with db.transaction() as conn:
            page = contacts.list_contacts(
                conn, principal.user_id, limit, cursor_from(cursor), group_id=group_id, status=status, query=q
            )
        return PageResponse(data=[ContactResponse.model_validate(c) for c in page.items], next_cursor=page.next_cursor)

    @router.get("/v1/contacts/<contact_id>", tags=["Contacts"], summary="A contact", security=BEARER)
    def get(contact_id: UUID) -> ContactResponse:
        principal = caller(router, permissions.CONTACTS_READ)
        with db.transaction() as conn:
            return ContactResponse.model_validate(contacts.get_contact(conn, principal.user_id, contact_id))

    @router.patch("/v1/contacts/<contact_id>", tags=["Contacts"], summary="Change a contact", security=BEARER)
    def update(contact_id: UUID, body: Annotated[ContactUpdateRequest, Body()]) -> ContactResponse:
        principal = caller(router, permissions.CONTACTS_WRITE)
        changes = body.model_dump(include=body.model_fields_set)
        # country_code is the number's own region: it follows the number, it is not set apart from it.
        changes.pop("country_code", None)
        for required in ("phone_number", "custom_fields", "status"):
            if required in changes and changes[required] is None:
                raise InvalidInputError(f"{required} cannot be null.", errors=[FieldError(required, "cannot be null")])
        with db.transaction() as conn:
            if "phone_number" in changes:
                region = body.country_code or contacts.account_region(conn, principal.user_id)
                changes["phone_number"], changes["country_code"] = phones.parse_for_field(
                    body.phone_number or "", region, field="phone_number"
                )
            if changes.get("email") is not None:
                changes["email"] = str(changes["email"])
            if changes.get("timezone") is not None:
                windows.check_zone(changes["timezone"], "timezone")
            contact = contacts.update_contact(conn, principal.user_id, contact_id, changes, request_meta(router))
        return ContactResponse.model_validate(contact)

    @router.delete("/v1/contacts/<contact_id>", tags=["Contacts"], summary="Delete a contact", security=BEARER)
    def delete(contact_id: UUID) -> Response[None]:
        principal = caller(router, permissions.CONTACTS_WRITE)
        with db.transaction() as conn:
            contacts.delete_contact(conn, principal.user_id, contact_id, request_meta(router))
        return Response(status_code=204)

    @router.post(
        "/v1/contacts/imports",
        status_code=202,
        tags=["Contacts"],
        summary="Import contacts from CSV",
        description=(
            'Send the CSV as the body (text/csv, up to 5 MB), or send JSON {"upload": true} to get a URL '
            "to PUT a larger file to. Columns: phone (or phone_number, mobile), first_name, last_name, email, "
            "country_code, timezone (IANA); any other column becomes a custom field. Comma or semicolon "
            "separated, UTF-8."
        ),
        security=BEARER,
    )
    def start_import(
        group_id: Annotated[UUID | None, Query()] = None,
        default_region: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    ) -> Response[str]:
        principal = caller(router, permissions.CONTACTS_WRITE)
        event = router.current_event
        content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
        raw = event.decoded_body or ""
        body = raw.encode() if isinstance(raw, str) else raw
        if content_type in ("text/csv", "application/csv", "text/plain"):
            if not body.strip():
                raise InvalidInputError("The CSV body is empty.", errors=[FieldError("body", "is empty")])
            if len(body) > MAX_BODY_BYTES:
                raise PayloadTooLargeError(
                    'CSV bodies are limited to 5 MB; send {"upload": true} for a presigned upload URL.'
                )
            return _start(principal.user_id, "body", group_id, default_region, body)
        if content_type == "application/json":
            try:
                request = ImportUploadRequest.model_validate(json.loads(body or b"{}"))
            except json.JSONDecodeError as exc:
                raise MalformedRequestError("The request body is not valid JSON.") from exc
            return _start(
                principal.user_id, "upload", request.group_id or group_id, request.default_region or default_region
            )
        raise UnsupportedMediaTypeError('Send text/csv, or application/json with {"upload": true}.')

    def _start(
        user_id: UUID, source: ImportSource, group_id: UUID | None, region: str | None, body: bytes | None = None
    ) -> Response[str]:
        bucket = _imports_bucket()
        with db.transaction() as conn:
            job = jobs.start_import(
                conn, user_id, request_meta(router), source=source, group_id=group_id, default_region=region
            )
        # The row is committed before the file lands, so the import function always finds it.
        response = ImportResponse.from_import(job)
        if body is not None:
            try:
                storage.put_object(bucket, job.object_key, body, "text/csv")
            except Exception:
                with db.transaction() as conn:
                    jobs.fail(conn, job.id, "The file could not be stored; send it again.")
                raise
        else:
            ttl = get_settings().upload_url_ttl_seconds
            response.upload_url = storage.presigned_upload_url(bucket, job.object_key, ttl)
            response.upload_expires_in = ttl
        return Response(status_code=202, content_type="application/json", body=response.model_dump_json())

    @router.get(
        "/v1/contacts/imports/<import_id>",
        tags=["Contacts"],
        summary="Progress and outcome of an import",
        security=BEARER,
    )
    def get_import(import_id: UUID) -> ImportResponse:
        principal = caller(router, permissions.CONTACTS_READ)
        with db.transaction() as conn:
            job, errors = jobs.get_import(conn, principal.user_id, import_id)
        return ImportResponse.from_import(job, errors)

    @router.get(
        "/v1/contacts/<contact_id>/conversation",
        tags=["Contacts"],
        summary="Messages to and from a contact, newest first",
        description="Outbound and inbound merged, each marked with its direction. Needs messages:read.",
        security=BEARER,
    )
    def conversation(
        contact_id: UUID, limit: Limit = pagination.DEFAULT_LIMIT, cursor: CursorParam = None
    ) -> PageResponse[ConversationItemResponse]:
        principal = caller(router, permissions.MESSAGES_READ)
        with db.transaction() as conn:
            page = history.conversation(conn, principal.user_id, contact_id, limit, cursor_from(cursor))
        return PageResponse(
            data=[ConversationItemResponse.model_validate(item) for item in page.items], next_cursor=page.next_cursor
        )

    return router
