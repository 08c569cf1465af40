"""Routes for campaigns: definition, preview, release, cancellation, stats and delivery logs."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import AnyHttpUrl, Field

from smsplatform.accounts import permissions
from smsplatform.accounts.principals import Principal
from smsplatform.api.context import caller, request_meta
from smsplatform.api.messages import MessageResponse, ValidityPeriod
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
from smsplatform.campaigns import campaigns
from smsplatform.campaigns.campaigns import CampaignStatus
from smsplatform.campaigns.templates import MAX_TEMPLATE_CHARACTERS
from smsplatform.core import db, pagination
from smsplatform.core.config import get_settings
from smsplatform.core.errors import FieldError, InvalidInputError
from smsplatform.sending import messages, status_callbacks, windows
from smsplatform.sending.encoding import Encoding
from smsplatform.sending.messages import MessageStatus

Name = Annotated[str, Field(min_length=1, max_length=100)]
Template = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARACTERS,
        description="Text with {{first_name}}, {{last_name}}, {{phone_number}}, {{email}} or "
        "{{custom_fields.key}}, each with an optional fallback: {{first_name|there}}",
    ),
]
SenderId = Annotated[str, Field(min_length=1, max_length=50, description="Alphanumeric sender or a number")]
GroupIds = Annotated[list[UUID], Field(min_length=1, max_length=50)]


ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24-hour")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SendWindowSetting(RequestModel):
    start: ClockTime
    end: Annotated[ClockTime, Field(description="Before start: the window runs past midnight")]
    days: Annotated[
        list[Day] | None, Field(min_length=1, max_length=7, description="Days it opens on; default every day")
    ] = None
    timezone: Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            description="'recipient' (the contact's timezone, else every zone its number may be in) or an IANA name",
        ),
    ] = windows.RECIPIENT


class CampaignSettings(RequestModel):
    send_window: Annotated[
        SendWindowSetting | None,
        Field(description="Messages go only while this window is open; the others wait (queued, with not_before)"),
    ] = None
    validity_period: Annotated[
        ValidityPeriod | None,
        Field(description="Counted from release: a message not handed to a provider by then fails as expired "
              "and is refunded"),
    ] = None  # fmt: skip
    throughput_per_second: Annotated[
        int | None,
        Field(strict=True, ge=1, le=1000, description="At most this many messages per second, across all senders"),
    ] = None
    status_callback_url: Annotated[
        AnyHttpUrl | None, Field(description="Receives each message status change (signed)")
    ] = None


class CampaignCreateRequest(RequestModel):
    # The template's spaces are part of the message.
    model_config = RequestModel.model_config | {"str_strip_whitespace": False}

    name: Name
    message_template: Template
    sender_id: SenderId | None = None
    group_ids: GroupIds
    scheduled_time: Annotated[datetime | None, Field(description="Future, with a UTC offset")] = None
    settings: CampaignSettings = Field(default_factory=CampaignSettings)


class CampaignUpdateRequest(UpdateRequestModel):
    model_config = UpdateRequestModel.model_config | {"str_strip_whitespace": False}

    name: Name | None = None
    message_template: Template | None = None
    sender_id: SenderId | None = None
    group_ids: GroupIds | None = None
    settings: CampaignSettings | None = None


class ScheduleRequest(RequestModel):
    scheduled_time: Annotated[datetime, Field(description="Future, with a UTC offset")]


class CampaignPreviewRequest(RequestModel):
    contact_id: Annotated[UUID | None, Field(description="Render for this contact; default: the first recipient")] = (
        None
    )


class CampaignResponse(ResponseModel):
    id: UUID
    name: str
    message_template: str
    sender_id: str | None
    group_ids: list[UUID]
    status: CampaignStatus
    total_recipients: int
    scheduled_time: datetime | None
    settings: dict[str, object]
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None


class CountryCost(ResponseModel):
    country: Annotated[str | None, Field(description="ISO 3166-1 alpha-2 of the recipients' numbers")]
    recipients: int
    segments: int
    credits: Annotated[int, Field(description="0 where the destination is blocked or unpriced")]
    credits_per_segment: int | None
    blocked: Annotated[bool, Field(description="Blocked or unpriced: these recipients would be skipped")]


class CampaignPreviewResponse(ResponseModel):
    text: str
    encoding: Encoding
    segments: int
    characters: int
    recipients: Annotated[
        int, Field(description="Who would receive it now: active, opted-in, once each, to a priced destination")
    ]
    estimated_credits: Annotated[int, Field(description="At today's prices; release fixes them for the campaign")]
    skipped_blocked: Annotated[int, Field(description="Recipients whose destination is blocked or unpriced")]
    cost_by_country: list[CountryCost]
    sample_contact_id: UUID | None


class CampaignStatsResponse(ResponseModel):
    total: int
    queued: int
    sending: int
    sent: int
    delivered: int
    failed: int
    undelivered: int
    cancelled: int
    waiting: Annotated[int, Field(description="Of queued: held until their sending window opens")]
    expired: Annotated[int, Field(description="Of failed: not sent within the validity period")]
    skipped_blocked: Annotated[int, Field(description="Recipients left out: destination blocked or unpriced")]
    credits_reserved: int
    credits_spent: int
    credits_refunded: int


def _settings_dict(settings: CampaignSettings, principal: Principal) -> dict[str, object]:
    """The settings to store; a callback URL sends the account's data elsewhere, so it needs webhooks:write."""
    values = settings.model_dump(mode="json", exclude_none=True)
    window = settings.send_window
    if window is not None:
        if window.start == window.end:
            raise InvalidInputError(
                "A sending window opens and closes at different times.",
                errors=[FieldError("settings.send_window.end", "equals start")],
            )
        if window.timezone != windows.RECIPIENT:
            windows.check_zone(window.timezone, "settings.send_window.timezone")
        if window.days is not None and len(set(window.days)) != len(window.days):
            raise InvalidInputError(
                "A day is listed twice.", errors=[FieldError("settings.send_window.days", "has a day twice")]
            )
    if "status_callback_url" in values:
        principal.require(permissions.WEBHOOKS_WRITE)
        status_callbacks.check_url(str(values["status_callback_url"]), get_settings())
    return values


def campaigns_routes() -> Router:
    router = Router()
    tags = ["Campaigns"]

    @router.post("/v1/campaigns", status_code=201, tags=tags, summary="Create a campaign", security=BEARER)
    def create(body: Annotated[CampaignCreateRequest, Body()]) -> CampaignResponse:
        principal = caller(router, permissions.CAMPAIGNS_WRITE)
        with db.transaction() as conn:
            campaign = campaigns.create_campaign(
                conn,
                principal.user_id,
                name=body.name,
                message_template=body.message_template,
                sender_id=body.sender_id,
                group_ids=body.group_ids,
                scheduled_time=body.scheduled_time,
                settings=_settings_dict(body.settings, principal),
                meta=request_meta(router),
            )
        return CampaignResponse.model_validate(campaign)

    @router.get("/v1/campaigns", tags=tags, summary="List campaigns, newest first", security=BEARER)
    def list_all(
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
        status: Annotated[CampaignStatus | None, Query()] = None,
    ) -> PageResponse[CampaignResponse]:
        principal = caller(router, permissions.CAMPAIGNS_READ)
        with db.transaction() as conn:
            page = campaigns.list_campaigns(conn, principal.user_id, limit, cursor_from(cursor), status)
        return PageResponse(data=[CampaignResponse.model_validate(c) for c in page.items], next_cursor=page.next_cursor)

    @router.get("/v1/campaigns/<campaign_id>", tags=tags, summary="A campaign", security=BEARER)
    def get(campaign_id: UUID) -> CampaignResponse:
        principal = caller(router, permissions.CAMPAIGNS_READ)
        with db.transaction() as conn:
            return CampaignResponse.model_validate(campaigns.get_campaign(conn, principal.user_id, campaign_id))

    @router.patch(
        "/v1/campaigns/<campaign_id>", tags=tags, summary="Change a draft or scheduled campaign", security=BEARER
    )
    def update(campaign_id: UUID, body: Annotated[CampaignUpdateRequest, Body()]) -> CampaignResponse:
        principal = caller(router, permissions.CAMPAIGNS_WRITE)
        changes = body.model_dump(include=body.model_fields_set)
        for required in ("name", "message_template", "group_ids", "settings"):
            if required in changes and changes[required] is None:
                raise InvalidInputError(f"{required} cannot be null.", errors=[FieldError(required, "cannot be null")])
        if body.settings is not None:
            changes["settings"] = _settings_dict(body.settings, principal)
        with db.transaction() as conn:
            campaign = campaigns.update_campaign(conn, principal.user_id, campaign_id, changes, request_meta(router))
        return CampaignResponse.model_validate(campaign)

    @router.delete(
        "/v1/campaigns/<campaign_id>", tags=tags, summary="Delete a draft or scheduled campaign", security=BEARER
    )
    def delete(campaign_id: UUID) -> Response[None]:
        principal = caller(router, permissions.CAMPAIGNS_WRITE)
        with db.transaction() as conn:
            campaigns.delete_campaign(conn, principal.user_id, campaign_id, request_meta(router))
        return Response(status_code=204)

    @router.post(
        "/v1/campaigns/<campaign_id>/preview",
        tags=tags,
        summary="The text one recipient would get, and the audience's size and cost",
        security=BEARER,
    )
    def preview(
        campaign_id: UUID, body: Annotated[CampaignPreviewRequest | None, Body()] = None
    ) -> CampaignPreviewResponse:
        principal = caller(router, permissions.CAMPAIGNS_READ)
        with db.transaction() as conn:
            shown = campaigns.preview(
                conn,
                principal.user_id,
                campaign_id,
                body.contact_id if body else None,
                get_settings().default_credits_per_segment,
            )
        return CampaignPreviewResponse.model_validate(shown)

    @router.post(
        "/v1/campaigns/<campaign_id>/send",
        status_code=202,
        tags=tags,
        summary="Send now: queued at once, recipients resolved and charged by the dispatcher",
        description="A campaign that cannot start (no credits, no recipients) becomes failed with a failure_reason.",
        security=BEARER,
    )
    def send(campaign_id: UUID) -> Response[str]:
        principal = caller(router, permissions.CAMPAIGNS_SEND)
        with db.transaction() as conn:
            campaign = campaigns.send_now(conn, principal.user_id, campaign_id, request_meta(router))
        return Response(
            status_code=202,
            content_type="application/json",
            body=CampaignResponse.model_validate(campaign).model_dump_json(),
        )

    @router.post("/v1/campaigns/<campaign_id>/schedule", tags=tags, summary="Send at a future time", security=BEARER)
    def schedule(campaign_id: UUID, body: Annotated[ScheduleRequest, Body()]) -> CampaignResponse:
        principal = caller(router, permissions.CAMPAIGNS_SEND)
        with db.transaction() as conn:
            campaign = campaigns.schedule(
                conn, principal.user_id, campaign_id, body.scheduled_time, request_meta(router)
            )
        return CampaignResponse.model_validate(campaign)

    @router.post(
        "/v1/campaigns/<campaign_id>/cancel",
        tags=tags,
        summary="Stop a campaign; unsent messages are refunded",
        security=BEARER,
    )
    def cancel(campaign_id: UUID) -> CampaignResponse:
        principal = caller(router, permissions.CAMPAIGNS_SEND)
        with db.transaction() as conn:
            campaign = campaigns.cancel(conn, principal.user_id, campaign_id, request_meta(router))
            due = status_callbacks.accounts_due(conn, [principal.user_id])
        status_callbacks.announce(due)  # the cancelled messages' status changes
        return CampaignResponse.model_validate(campaign)

    @router.post(
        "/v1/users/<user_id>/campaigns/<campaign_id>/cancel",
        tags=["Operators"],
        summary="Cancel any account's campaign",
        description="As the owner's cancel: unsent messages fail as cancelled and their credits return. "
        "The audit trail names the operator.",
        security=BEARER,
    )
    def cancel_any(user_id: UUID, campaign_id: UUID) -> CampaignResponse:
        principal = caller(router, permissions.USERS_ADMIN)
        with db.transaction() as conn:
            campaign = campaigns.cancel(conn, user_id, campaign_id, request_meta(router), actor=principal.user_id)
            due = status_callbacks.accounts_due(conn, [user_id])
        status_callbacks.announce(due)
        return CampaignResponse.model_validate(campaign)

    @router.get("/v1/campaigns/<campaign_id>/stats", tags=tags, summary="Messages by status, credits", security=BEARER)
    def stats(campaign_id: UUID) -> CampaignStatsResponse:
        principal = caller(router, permissions.CAMPAIGNS_READ)
        with db.reads() as conn:
            return CampaignStatsResponse.model_validate(campaigns.stats(conn, principal.user_id, campaign_id))

    @router.get(
        "/v1/campaigns/<campaign_id>/messages", tags=tags, summary="Delivery logs, in send order", security=BEARER
    )
    def list_messages(
        campaign_id: UUID,
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
        status: Annotated[MessageStatus | None, Query()] = None,
    ) -> PageResponse[MessageResponse]:
        principal = caller(router, permissions.CAMPAIGNS_READ)
        after = messages.MessageCursor.decode(cursor) if cursor else None
        with db.reads() as conn:
            page, next_cursor = messages.list_campaign_messages(
                conn, principal.user_id, campaign_id, limit, after, status
            )
        return PageResponse(data=[MessageResponse.model_validate(m) for m in page], next_cursor=next_cursor)

    return router
