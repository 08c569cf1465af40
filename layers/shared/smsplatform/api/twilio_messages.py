"""The Twilio-compatible Messages API: `/2010-04-01/Accounts/{AccountSid}/Messages`, for Twilio's own SDKs.

Form-encoded requests in, Twilio's JSON out, errors in Twilio's `{code, message,
more_info, status}` shape with Twilio's codes. Each request maps onto the same
domain calls as `/v1/messages` (pricing, credits, opt-outs, the send queue,
receipts and callbacks); only the translation lives here and in
`sending/twilio_compatible.py`.
"""

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import parse_qsl
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError

from smsplatform.accounts import permissions, sender_ids
from smsplatform.accounts.principals import Principal
from smsplatform.api import request_checks
from smsplatform.api.context import caller, http_event, request_meta
from smsplatform.api.messages import MAX_TEXT_CHARACTERS, check_send_at
from smsplatform.api.resolver import PlatformResolver, access_log
from smsplatform.contacts import contacts, opt_outs, phones
from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.core.errors import (
    AccountSuspendedError,
    AuthenticationError,
    ConflictError,
    DomainError,
    InsufficientCreditsError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    QueueFullError,
)
from smsplatform.core.observability import logger
from smsplatform.sending import history, messages, routing, status_callbacks
from smsplatform.sending import twilio_compatible as twilio

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
TWILIO_VALIDITY_RANGE = (1, 36_000)  # Twilio's ValidityPeriod, seconds
MIN_VALIDITY_SECONDS = 60  # expiry is swept every minute: a shorter period counts as a minute
_FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")  # repeated in each page's URIs
_PAGE_TOKEN_PREFIX = "PA"  # noqa: S105  # Twilio's look for a page token, not a secret


class TwilioError(DomainError):
    """An error answered in Twilio's shape, with Twilio's code."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


# Our domain errors, as Twilio's (code, HTTP status).
_AS_TWILIO: dict[type[DomainError], tuple[int, int]] = {
    AuthenticationError: (twilio.AUTHENTICATE, 401),
    AccountSuspendedError: (twilio.ACCOUNT_NOT_ACTIVE, 401),
    PermissionDeniedError: (twilio.FORBIDDEN, 403),
    NotFoundError: (twilio.NOT_FOUND, 404),
    InsufficientCreditsError: (twilio.ACCOUNT_NOT_ACTIVE, 402),
    QueueFullError: (twilio.QUEUE_OVERFLOW, 400),
    ConflictError: (twilio.NOT_CANCELABLE, 409),
}


def _answer(code: int, message: str, status: int) -> Response[str]:
    return _json(status, twilio.error(code, message, status))


def _as_twilio(error: DomainError) -> Response[str]:
    if isinstance(error, TwilioError):
        return _answer(error.code, error.detail, error.status)
    for kind, (code, status) in _AS_TWILIO.items():
        if isinstance(error, kind):
            return _answer(code, error.detail, status)
    # Anything else keeps its HTTP status (415, 413 ...), but a 422 is Twilio's 400 for a bad parameter.
    return _answer(twilio.INVALID_PARAMETER, error.detail, 400 if error.status == 422 else error.status)


class TwilioResolver(PlatformResolver):
    """Refuses unusable input (`request_checks`) in Twilio's error shape, as every route here answers."""

    def refusal(self, error: DomainError) -> dict[str, Any]:
        response = _as_twilio(error)
        return {
            "statusCode": response.status_code,
            "headers": {"Content-Type": "application/json"},
            "body": response.body,
            "isBase64Encoded": False,
        }


def create_twilio_resolver() -> APIGatewayHttpResolver:
    app = TwilioResolver()
    app.use(middlewares=[access_log])
    app.include_router(twilio_messages_routes())

    @app.exception_handler(DomainError)
    def _domain_error(error: DomainError) -> Response[str]:
        return _as_twilio(error)

    @app.not_found
    def _no_route(_exc: RouteNotFoundError) -> Response[str]:
        path = http_event(app).path
        return _answer(twilio.NOT_FOUND, f"The requested resource {path} was not found", 404)

    @app.exception_handler(Exception)
    def _unexpected(_exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return _answer(20500, "Internal error; it was logged.", 500)

    return app


def _form(router: Router) -> dict[str, str]:
    """The form body's fields (the last of a repeated one); each must be text PostgreSQL can store.
    (Another media type never gets here: request_checks refuses it, in Twilio's shape, before any route.)"""
    raw = http_event(router).decoded_body or ""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    fields = dict(parse_qsl(text, keep_blank_values=True))
    for name, value in fields.items():
        if not request_checks.storable(name) or not request_checks.storable(value):
            raise TwilioError(twilio.INVALID_PARAMETER, f"The '{name}' parameter holds characters that cannot be kept.")
    return fields


def _account(router: Router, account_sid: str, permission: str) -> Principal:
    principal = caller(router, permission)
    if twilio.account_id(account_sid) != principal.user_id:
        raise TwilioError(twilio.AUTHENTICATE, "The AccountSid in the URL is not the one authenticated.", 401)
    return principal


def _required(fields: Mapping[str, str], name: str, code: int, message: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise TwilioError(code, message)
    return value


def _validity(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    low, high = TWILIO_VALIDITY_RANGE
    if not value.isdigit() or not low <= int(value) <= high:
        raise TwilioError(twilio.INVALID_VALIDITY_PERIOD, f"ValidityPeriod is whole seconds from {low} to {high}.")
    return max(MIN_VALIDITY_SECONDS, int(value))


def _send_at(fields: Mapping[str, str]) -> datetime | None:
    value = fields.get("SendAt")
    if not value:
        return None
    if fields.get("ScheduleType") != "fixed":
        raise TwilioError(twilio.SCHEDULE_TYPE_REQUIRED, "SendAt needs ScheduleType=fixed.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise TwilioError(twilio.INVALID_SEND_AT, "SendAt is an ISO 8601 time with a UTC offset.")
    _translate(lambda: check_send_at(moment), twilio.INVALID_SEND_AT, lambda exc: f"SendAt: {exc.errors[0].message}.")
    return moment


def _translate(call: Callable[[], Any], code: int, message: Callable[[InvalidInputError], str]) -> Any:
    """`call()`, with an InvalidInputError it raises answered as Twilio's `code`."""
    try:
        return call()
    except InvalidInputError as exc:
        raise TwilioError(code, message(exc)) from exc


def _fail(code: int, message: str, status: int = 400) -> NoReturn:
    raise TwilioError(code, message, status)


def _sender(conn: Any, principal: Principal, fields: Mapping[str, str]) -> str | None:
    service = fields.get("MessagingServiceSid")
    sender = fields.get("From")
    if not sender and not service:
        _fail(twilio.FROM_REQUIRED, "A 'From' phone number or a MessagingServiceSid is required.")
    if service and twilio.service_account(service) != principal.user_id:
        _fail(twilio.NOT_FOUND, f"The Messaging Service {service} was not found", 404)
    return _translate(
        lambda: sender_ids.resolve(conn, principal.user_id, sender or None),
        twilio.FROM_NOT_OWNED,
        lambda _exc: f"The 'From' number {sender} is not a sender id verified for this account.",
    )


def _page_token(token: str | None) -> str | None:
    if not token:
        return None
    if not token.startswith(_PAGE_TOKEN_PREFIX):
        _fail(twilio.INVALID_PARAMETER, "PageToken is not one this API returned.")
    return token[len(_PAGE_TOKEN_PREFIX) :]


def _date(value: str, name: str) -> datetime:
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        _fail(twilio.INVALID_PARAMETER, f"{name} is a date, YYYY-MM-DD.")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _sent_range(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """DateSent (that UTC day), DateSent< (before the end of that day), DateSent> (from that day on)."""
    since = until = None
    if query.get("DateSent"):
        since = _date(query["DateSent"], "DateSent")
        until = since + timedelta(days=1)
    if query.get("DateSent<"):
        until = _date(query["DateSent<"], "DateSent<") + timedelta(days=1)
    if query.get("DateSent>"):
        since = _date(query["DateSent>"], "DateSent>")
    return since, until


def twilio_messages_routes() -> Router:
    router = Router()
    messages_path = f"{twilio.BASE_PATH}/<account_sid>/Messages.json"
    message_path = f"{twilio.BASE_PATH}/<account_sid>/Messages/<message_file>"

    @router.post(messages_path)
    def create(account_sid: str) -> Response[str]:
        principal = _account(router, account_sid, permissions.MESSAGES_SEND)
        fields = _form(router)
        if fields.get("MediaUrl"):
            _fail(twilio.INVALID_PARAMETER, "MediaUrl: this platform sends SMS only.")
        to = _required(fields, "To", twilio.TO_REQUIRED, "A 'To' phone number is required.")
        body = _required(fields, "Body", twilio.BODY_REQUIRED, "Message body is required.")
        if len(body) > MAX_TEXT_CHARACTERS:
            _fail(twilio.BODY_TOO_LONG, f"The message body exceeds the {MAX_TEXT_CHARACTERS} character limit.")
        validity = _validity(fields.get("ValidityPeriod"))
        send_at = _send_at(fields)
        settings = get_settings()
        callback = fields.get("StatusCallback") or None
        if callback:
            _translate(
                lambda: status_callbacks.check_url(callback, settings),
                twilio.INVALID_STATUS_CALLBACK,
                lambda exc: f"StatusCallback: {exc.detail}",
            )
        with db.transaction() as conn:
            region = contacts.account_region(conn, principal.user_id)
            number, country = _translate(
                lambda: phones.parse_for_field(to, region, field="To"),
                twilio.INVALID_TO,
                lambda _exc: f"The 'To' number {to} is not a valid phone number.",
            )
            sender = _sender(conn, principal, fields)
            if opt_outs.is_opted_out(conn, principal.user_id, number):
                _fail(twilio.UNSUBSCRIBED, "Attempt to send to unsubscribed recipient")
            accepted = _translate(
                lambda: messages.send(
                    conn,
                    principal.user_id,
                    [messages.Destination(number, country, "To")],
                    body,
                    sender,
                    request_meta(router),
                    batch_size=routing.batch_size(routing.slowest_rate(conn, principal.user_id, settings), settings),
                    default_price=settings.default_credits_per_segment,
                    send_at=send_at,
                    validity_period=validity,
                    status_callback_url=callback,
                    max_queued=settings.max_queued_messages,
                ),
                twilio.REGION_NOT_ENABLED,
                lambda _exc: f"Permission to send an SMS has not been enabled for the region of {number}.",
            )
            alerts = status_callbacks.accounts_due(conn, [principal.user_id])
        messages.announce(accepted)
        try:
            status_callbacks.announce(alerts)
        except Exception:
            logger.exception("announcing callbacks failed; the scheduler's sweep will")
        return _json(201, twilio.message_resource(principal.user_id, accepted.messages[0]))

    @router.get(messages_path)
    def list_messages(account_sid: str) -> Response[str]:
        principal = _account(router, account_sid, permissions.MESSAGES_READ)
        query = dict(http_event(router).query_string_parameters or {})
        size_text = query.get("PageSize") or str(DEFAULT_PAGE_SIZE)
        page_text = query.get("Page") or "0"
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
            _fail(twilio.INVALID_PARAMETER, f"PageSize is 1 to {MAX_PAGE_SIZE}.")
        if not page_text.isdigit():
            _fail(twilio.INVALID_PARAMETER, "Page is a whole number.")
        token = query.get("PageToken") or None
        sent_since, sent_until = _sent_range(query)
        with db.reads() as conn:
            region = contacts.account_region(conn, principal.user_id)
            to = query.get("To")
            number = (
                _translate(
                    lambda: phones.normalise_e164(to, region, field="To"),
                    twilio.INVALID_TO,
                    lambda _exc: f"The 'To' number {to} is not a valid phone number.",
                )
                if to
                else None
            )
            where = history.MessageFilter(
                to=number, sender_id=query.get("From") or None, sent_since=sent_since, sent_until=sent_until
            )
            found = _translate(
                lambda: history.list_messages(conn, principal.user_id, where, int(size_text), _page_token(token)),
                twilio.INVALID_PARAMETER,
                lambda _exc: "PageToken is not one this API returned.",
            )
        filters = {name: query[name] for name in _FILTERS if query.get(name)}
        page = twilio.page(
            f"{twilio.BASE_PATH}/{account_sid}/Messages.json",
            filters,
            [twilio.message_resource(principal.user_id, m) for m in found.items],
            int(page_text),
            int(size_text),
            token,
            _PAGE_TOKEN_PREFIX + found.next_cursor if found.next_cursor else None,
        )
        return _json(200, page)

    def _message_id(message_file: str) -> UUID:
        found = twilio.message_id(message_file.removesuffix(".json")) if message_file.endswith(".json") else None
        if found is None:
            _fail(twilio.NOT_FOUND, f"The requested resource {http_event(router).path} was not found", 404)
        return found

    @router.get(message_path)
    def fetch(account_sid: str, message_file: str) -> Response[str]:
        principal = _account(router, account_sid, permissions.MESSAGES_READ)
        message_id = _message_id(message_file)
        with db.transaction() as conn:
            message = messages.get_message(conn, principal.user_id, message_id)
        return _json(200, twilio.message_resource(principal.user_id, message))

    @router.post(message_path)
    def update(account_sid: str, message_file: str) -> Response[str]:
        """Twilio's Message update: `Status=canceled` cancels a scheduled message. Redacting a body is not
        offered: a message's text is the account's record of what it sent."""
        principal = _account(router, account_sid, permissions.MESSAGES_SEND)
        message_id = _message_id(message_file)
        fields = _form(router)
        if fields.get("Status") != "canceled":
            _fail(twilio.INVALID_PARAMETER, "Only Status=canceled is supported, for a scheduled message.")
        with db.transaction() as conn:
            message = messages.cancel(conn, principal.user_id, message_id, request_meta(router))
        return _json(200, twilio.message_resource(principal.user_id, message))

    return router


def _json(status: int, document: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(document))
