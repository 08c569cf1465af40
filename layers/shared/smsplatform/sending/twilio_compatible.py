"""Twilio's Message resource, over our messages: identifiers, statuses, error codes, pages, callbacks.

Integrators who send with Twilio switch by pointing the official SDK's base URL
at the platform. Everything here is the translation: a Twilio SID is our UUID's
hex with Twilio's prefix (`AC` account, `SM` message, `MG` the account's one
messaging service), so no mapping table exists to drift; statuses and error
codes are mapped to Twilio's; dates are RFC 2822. The resource carries exactly
Twilio's keys and a list page exactly Twilio's meta keys plus `messages`: the
SDK takes the one non-meta key of a page as its records.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from smsplatform.accounts.principals import twilio_account_sid as account_sid
from smsplatform.sending.messages import Message

API_VERSION = "2010-04-01"
BASE_PATH = f"/{API_VERSION}/Accounts"
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
PRICE_UNIT = "credits"  # a price is in the platform's credits, not a currency

# Twilio's numeric codes for the errors this API answers with.
INVALID_TO = 21211
FROM_NOT_OWNED = 21606
UNSUBSCRIBED = 21610
QUEUE_OVERFLOW = 21611
AUTHENTICATE = 20003
NOT_FOUND = 20404
ACCOUNT_NOT_ACTIVE = 10001  # Twilio's code for an account out of funds, or suspended
BODY_REQUIRED = 21602
FROM_REQUIRED = 21603
TO_REQUIRED = 21604
BODY_TOO_LONG = 21617
INVALID_PARAMETER = 20001  # Twilio's "unknown parameter", which it answers for unusable values too
INVALID_STATUS_CALLBACK = 21609
REGION_NOT_ENABLED = 21408  # Twilio's geo permission: the account's prices block or leave unpriced the country
FORBIDDEN = 20403
INVALID_VALIDITY_PERIOD = 21624
INVALID_SEND_AT = 35114
SCHEDULE_TYPE_REQUIRED = 35111
NOT_CANCELABLE = 30400  # "cannot cancel": the message is no longer scheduled or queued

_STATUSES = {
    "scheduled": "scheduled",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "cancelled": "canceled",
}
# Our own error codes, as Twilio's. A provider's code that ends in Twilio's five digits (Twilio's own, the
# simulator's "SIM-30003") keeps them; anything else that failed is Twilio's "unknown error".
_ERROR_CODES = {"opted_out": UNSUBSCRIBED, "expired": 30036, "no_send_window": 30036, "outcome_unknown": 30008}
_UNKNOWN_ERROR = 30008
_DIGITS = re.compile(r"(?:^|[^0-9])([0-9]{5})$")


def messaging_service_sid(user_id: UUID) -> str:
    """The one messaging service each account has: its default sender identity."""
    return "MG" + user_id.hex


def message_sid(message_id: UUID) -> str:
    return "SM" + message_id.hex


def _uuid(sid: str, prefix: str) -> UUID | None:
    if len(sid) != 34 or not sid.startswith(prefix):
        return None
    try:
        return UUID(hex=sid[2:])
    except ValueError:
        return None


def account_id(sid: str) -> UUID | None:
    return _uuid(sid, "AC")


def message_id(sid: str) -> UUID | None:
    return _uuid(sid, "SM")


def service_account(sid: str) -> UUID | None:
    return _uuid(sid, "MG")


def status(ours: str) -> str:
    return _STATUSES[ours]


def error_code(ours: str | None, our_status: str) -> int | None:
    if our_status == "cancelled" or not ours:
        return _UNKNOWN_ERROR if our_status in ("failed", "undelivered") else None
    if ours in _ERROR_CODES:
        return _ERROR_CODES[ours]
    digits = _DIGITS.search(ours)
    return int(digits.group(1)) if digits else _UNKNOWN_ERROR


def rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment.astimezone(UTC), usegmt=True) if moment is not None else None


def message_uri(user_id: UUID, message: UUID) -> str:
    return f"{BASE_PATH}/{account_sid(user_id)}/Messages/{message_sid(message)}.json"


def message_resource(user_id: UUID, message: Message) -> dict[str, Any]:
    """Twilio's Message resource: its keys, no others. Every message of the account goes through its one
    messaging service (its senders), so `messaging_service_sid` is always that service."""
    uri = message_uri(user_id, message.id)
    sent = message.status in ("sent", "delivered", "undelivered")
    return {
        "account_sid": account_sid(user_id),
        "api_version": API_VERSION,
        "body": message.body or "",
        "date_created": rfc2822(message.created_at),
        "date_sent": rfc2822(message.sent_at),
        "date_updated": rfc2822(message.updated_at),
        "direction": "outbound-api",
        "error_code": error_code(message.error_code, message.status),
        "error_message": message.error_message,
        "from": message.sender_id,
        "messaging_service_sid": messaging_service_sid(user_id),
        "num_media": "0",
        "num_segments": str(message.segments or 0),
        "price": f"-{message.cost.normalize():f}" if sent and message.cost else None,
        "price_unit": PRICE_UNIT,
        "sid": message_sid(message.id),
        "status": status(message.status),
        "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
        "to": message.phone_number,
        "uri": uri,
    }


def error(code: int, message: str, http_status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": MORE_INFO.format(code=code), "status": http_status}


def page(
    path: str,
    filters: Mapping[str, str],
    records: list[dict[str, Any]],
    page_number: int,
    page_size: int,
    this_token: str | None,
    next_token: str | None,
) -> dict[str, Any]:
    """A list page with Twilio's meta keys; the URIs are relative and repeat the filters."""

    def uri(number: int, token: str | None) -> str:
        query = {**filters, "PageSize": str(page_size), "Page": str(number)}
        if token:
            query["PageToken"] = token
        return f"{path}?{urlencode(query)}"

    start = page_number * page_size
    return {
        "messages": records,
        "end": start + max(len(records) - 1, 0),
        "first_page_uri": uri(0, None),
        "next_page_uri": uri(page_number + 1, next_token) if next_token else None,
        "page": page_number,
        "page_size": page_size,
        "previous_page_uri": None,  # keyset pages go forward: start again from first_page_uri
        "start": start,
        "uri": uri(page_number, this_token),
    }


def auth_token(master_key: str, user_id: UUID, version: int) -> str:
    """The key X-Twilio-Signature is made with (Twilio's "auth token"): derived like the callback secret,
    from the platform key and the account's secret version, so rotating that secret rotates this too."""
    return hmac.new(master_key.encode(), f"twilio-auth-token:{user_id}:{version}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def callback_fields(user_id: UUID, payload: Mapping[str, Any]) -> dict[str, str]:
    """Twilio's StatusCallback form fields for a message status change (the outbox row's payload)."""
    sid = message_sid(UUID(str(payload["message_id"])))
    twilio_status = status(str(payload["status"]))
    fields = {
        "AccountSid": account_sid(user_id),
        "ApiVersion": API_VERSION,
        "From": str(payload.get("from") or ""),
        "MessageSid": sid,
        "MessageStatus": twilio_status,
        "SmsSid": sid,
        "SmsStatus": twilio_status,
        "To": str(payload["to"]),
    }
    code = error_code(payload.get("error_code"), str(payload["status"]))
    if code is not None:
        fields["ErrorCode"] = str(code)
    return fields
