"""Routes for messages: preview, send through the pipeline, status, outbound history and inbound messages."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import AwareDatetime, BaseModel, Field

from smsplatform.accounts import permissions, sender_ids
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import (
    CursorParam,
    Limit,
    PageResponse,
    QueryTime,
    RequestModel,
    ResponseModel,
    cursor_from,
)
from smsplatform.api.resolver import BEARER
from smsplatform.contacts import contacts, phones
from smsplatform.core import db, pagination
from smsplatform.core.config import get_settings
from smsplatform.core.errors import FieldError, InvalidInputError
from smsplatform.core.observability import logger
from smsplatform.sending import encoding, history, messages, routing, status_callbacks
from smsplatform.sending.keywords import Keyword
from smsplatform.sending.messages import MessageStatus

MAX_TEXT_CHARACTERS = 1600
MAX_RECIPIENTS = 100
# Seconds a message may wait to be handed to a provider; past them it fails as expired and is refunded.
ValidityPeriod = Annotated[
    int, Field(strict=True, ge=60, le=259_200, description="Seconds; past them an unsent message expires")
]
SEND_AT_EARLIEST, SEND_AT_LATEST = timedelta(minutes=5), timedelta(days=35)
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARACTERS)]
Number = Annotated[str, Field(min_length=3, max_length=32)]


class PreviewRequest(RequestModel):
    # Leading and trailing spaces are sent, and counted: keep them.
    model_config = RequestModel.model_config | {"str_strip_whitespace": False}

    text: Text


class PreviewResponse(ResponseModel):
    encoding: encoding.Encoding
    segments: Annotated[int, Field(description="Parts the message is sent (and billed) as")]
    characters: Annotated[int, Field(description="Septets (GSM-7) or UTF-16 units (UCS-2) the text takes")]
    characters_per_segment: int
    remaining_in_segment: Annotated[int, Field(description="Room left before another part is needed")]


class SendRequest(RequestModel):
    model_config = RequestModel.model_config | {"str_strip_whitespace": False}

    to: Annotated[
        Number | Annotated[list[Number], Field(min_length=1, max_length=MAX_RECIPIENTS)],
        Field(description=f"One number or up to {MAX_RECIPIENTS}; E.164, or national in default_region"),
    ]
    text: Text
    sender_id: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    default_region: Annotated[str, Field(min_length=2, max_length=2)] | None = None
    send_at: Annotated[
        AwareDatetime | None,
        Field(description="Send then instead of now: 5 minutes to 35 days ahead, with a UTC offset"),
    ] = None
    validity_period: Annotated[
        ValidityPeriod | None,
        Field(description="Counted from send_at, if given: not handed to a provider by then, the message fails "
              "as expired and is refunded"),
    ] = None  # fmt: skip


class MessageResponse(ResponseModel):
    id: UUID
    campaign_id: UUID | None
    request_id: UUID | None
    recipient_id: UUID | None
    to: Annotated[str, Field(validation_alias="phone_number")]
    status: MessageStatus
    body: str | None
    sender_id: str | None
    segments: int | None
    encoding: str | None
    cost: Annotated[Decimal | None, Field(description="Credits")]
    attempts: int
    provider: str | None
    external_id: Annotated[str | None, Field(validation_alias="external_message_id")]
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    not_before: Annotated[
        datetime | None,
        Field(description="Waiting until then: its send_at, or the opening of its campaign's sending window"),
    ]
    expires_at: Annotated[datetime | None, Field(description="Not sent by then, it fails as expired")]


class InboundResponse(ResponseModel):
    id: UUID
    from_: Annotated[str, Field(validation_alias="from_number", serialization_alias="from")]
    to: Annotated[str | None, Field(validation_alias="to_number")]
    body: str
    keyword: Annotated[Keyword | None, Field(description="The account's keyword the whole text matched")]
    contact_id: Annotated[UUID | None, Field(description="The account's contact with this number, if any")]
    reply_message_id: Annotated[UUID | None, Field(description="The keyword's reply, sent like any message")]
    reply_skipped: Annotated[
        str | None,
        Field(
            description="Why a keyword got no reply: opted_out, insufficient_credits, account_closed, "
            "provider_replied (the provider answers it itself)"
        ),
    ]
    received_at: datetime


Since = Annotated[QueryTime | None, Query(description="From this time on (ISO 8601 with offset)")]
Until = Annotated[QueryTime | None, Query(description="Before this time (ISO 8601 with offset)")]
NumberParam = Annotated[str | None, Query(min_length=3, max_length=32, description="E.164 (URL-encode the +)")]


class SendResponse(BaseModel):
    request_id: UUID
    credits_reserved: int
    data: list[MessageResponse]


def check_send_at(send_at: datetime | None) -> None:
    """5 minutes to 35 days ahead (the Twilio-compatible API's SendAt too); raises a 422 on send_at."""
    if send_at is None:
        return
    ahead = send_at - datetime.now(UTC)
    if not SEND_AT_EARLIEST <= ahead <= SEND_AT_LATEST:
        raise InvalidInputError(
            "send_at is 5 minutes to 35 days ahead.",
            errors=[FieldError("send_at", "is not 5 minutes to 35 days ahead")],
        )


def messages_routes() -> Router:
    router = Router()

    @router.post(
        "/v1/messages/preview",
        tags=["Messages"],
        summary="Encoding and segments of a text, before anything is sent",
        description="Nothing is sent or charged. GSM 03.38 when every character allows it, else UCS-2.",
        security=BEARER,
    )
    def preview(body: Annotated[PreviewRequest, Body()]) -> PreviewResponse:
        caller(router)
        return PreviewResponse.model_validate(encoding.analyse(body.text))

    @router.post(
        "/v1/messages",
        status_code=202,
        tags=["Messages"],
        summary="Send a text to one or more numbers",
        description="Through the same queue, credits and receipts as campaigns. Each number is priced by its "
        "country (GET /v1/pricing); a blocked or unpriced one is a 422 naming it. Opted-out numbers are not sent "
        "to or charged: their message is failed with error_code opted_out. 402 if the credits do not cover it. "
        "With send_at the messages are scheduled (credits reserved now) and can be cancelled until sent. 429 "
        "(queue-full) while the account already has max_queued_messages single messages waiting.",
        security=BEARER,
    )
    def send(body: Annotated[SendRequest, Body()]) -> Response[str]:
        principal = caller(router, permissions.MESSAGES_SEND)
        raw = [body.to] if isinstance(body.to, str) else body.to
        check_send_at(body.send_at)
        with db.transaction() as conn:
            region = body.default_region or contacts.account_region(conn, principal.user_id)
            destinations: dict[str, messages.Destination] = {}
            problems = []
            for index, number in enumerate(raw):
                field = f"to[{index}]" if isinstance(body.to, list) else "to"
                try:
                    e164, country = phones.parse_for_field(number, region, field=field)
                    destinations.setdefault(e164, messages.Destination(e164, country, field))
                except InvalidInputError as exc:
                    problems.extend(exc.errors)
            if problems:
                raise InvalidInputError("Some numbers are not valid.", errors=problems)
            settings = get_settings()
            accepted = messages.send(
                conn,
                principal.user_id,
                list(destinations.values()),
                body.text,
                sender_ids.resolve(conn, principal.user_id, body.sender_id),
                request_meta(router),
                batch_size=routing.batch_size(routing.slowest_rate(conn, principal.user_id, settings), settings),
                default_price=settings.default_credits_per_segment,
                send_at=body.send_at,
                validity_period=body.validity_period,
                max_queued=settings.max_queued_messages,
            )
            alerts = status_callbacks.accounts_due(conn, [principal.user_id])  # a balance.low the reserve wrote
        messages.announce(accepted)  # committed: a sender finds the rows however fast it is
        try:
            status_callbacks.announce(alerts)
        except Exception:
            logger.exception("announcing callbacks failed; the scheduler's sweep will")
        response = SendResponse(
            request_id=accepted.request_id,
            credits_reserved=accepted.credits,
            data=[MessageResponse.model_validate(m) for m in accepted.messages],
        )
        return Response(status_code=202, content_type="application/json", body=response.model_dump_json())

    @router.get(
        "/v1/messages",
        tags=["Messages"],
        summary="Outbound history, newest first",
        description="Every message the account sent: campaigns', single sends' and keyword replies. With "
        "campaign_id, in reverse send order (last batch first).",
        security=BEARER,
    )
    def list_all(
        status: Annotated[MessageStatus | None, Query()] = None,
        campaign_id: Annotated[UUID | None, Query()] = None,
        to: NumberParam = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> PageResponse[MessageResponse]:
        principal = caller(router, permissions.MESSAGES_READ)
        with db.reads() as conn:
            number = (
                phones.normalise_e164(to, contacts.account_region(conn, principal.user_id), field="to") if to else None
            )
            where = history.MessageFilter(status, campaign_id, number, since, until)
            page = history.list_messages(conn, principal.user_id, where, limit, cursor)
        return PageResponse(data=[MessageResponse.model_validate(m) for m in page.items], next_cursor=page.next_cursor)

    @router.get(
        "/v1/inbound-messages",
        tags=["Messages"],
        summary="Messages recipients sent the account, newest first",
        description="Each is the account's when it was sent to one of its numbers, or answers its messages.",
        security=BEARER,
    )
    def list_inbound(
        from_: Annotated[str | None, Query(alias="from", min_length=3, max_length=32, description="E.164")] = None,
        keyword: Annotated[Keyword | None, Query()] = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = pagination.DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> PageResponse[InboundResponse]:
        principal = caller(router, permissions.MESSAGES_READ)
        with db.reads() as conn:
            region = contacts.account_region(conn, principal.user_id)
            number = phones.normalise_e164(from_, region, field="from") if from_ else None
            where = history.InboundFilter(number, keyword, since, until)
            page = history.list_inbound(conn, principal.user_id, where, limit, cursor_from(cursor))
        return PageResponse(data=[InboundResponse.model_validate(m) for m in page.items], next_cursor=page.next_cursor)

    @router.post(
        "/v1/messages/<message_id>/cancel",
        tags=["Messages"],
        summary="Cancel a scheduled or queued message",
        description="Until a sender takes it: it becomes cancelled and its credits are refunded at once. 409 once "
        "it is sending or sent.",
        security=BEARER,
    )
    def cancel(message_id: UUID) -> MessageResponse:
        principal = caller(router, permissions.MESSAGES_SEND)
        with db.transaction() as conn:
            return MessageResponse.model_validate(
                messages.cancel(conn, principal.user_id, message_id, request_meta(router))
            )

    @router.get("/v1/messages/<message_id>", tags=["Messages"], summary="A message and its status", security=BEARER)
    def get(message_id: UUID) -> MessageResponse:
        principal = caller(router, permissions.MESSAGES_READ)
        with db.transaction() as conn:
            return MessageResponse.model_validate(messages.get_message(conn, principal.user_id, message_id))

    return router
