"""Twilio's Messages REST API over plain HTTPS: form-encoded, Basic auth, pooled keep-alive connections.

Twilio has no idempotency key for sending, so a call whose answer never came
back (a read timeout, a dropped connection after the request went out) or came
back 5xx is in doubt: it fails as `outcome_unknown` instead of being retried or
failed over into a second copy. A call that never reached Twilio (no
connection) is transient, as is a 429, after its Retry-After.
Receipts come back to `/v1/webhooks/twilio/status`, signed with the account's
auth token (`X-Twilio-Signature`).
"""

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import urllib3

from smsplatform.core.config import Settings
from smsplatform.core.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from smsplatform.core.queue_messages import InboundMessage, Receipt
from smsplatform.core.secret_store import twilio_credentials
from smsplatform.providers.base import OutboundMessage, Provider, ProviderError, WebhookReply, WebhookRequest

SIGNATURE_HEADER = "X-Twilio-Signature"
_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# Twilio error codes a later attempt may get past: rate limits and queue overflow.
_TRANSIENT_CODES = {20429, 30001, 30008}
# MessageStatus values that end a message; the others (queued, sending, sent ...) are progress.
FINAL_STATUSES = {"delivered": "delivered", "undelivered": "undelivered", "failed": "undelivered"}


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature: HMAC-SHA1 over the URL followed by each sorted parameter's name and value."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def verify(auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str | None) -> bool:
    return bool(given) and bool(auth_token) and hmac.compare_digest(signature(auth_token, url, params), given or "")


def _signed_params(request: WebhookRequest, settings: Settings) -> dict[str, str]:
    try:
        token = str(twilio_credentials(settings)["auth_token"])
    except RuntimeError as exc:  # no secret, or the template's empty placeholder
        raise NotFoundError("Twilio is not configured on this platform.") from exc
    params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    if not verify(token, request.url, params, request.headers.get(SIGNATURE_HEADER.lower())):
        raise PermissionDeniedError("The request's X-Twilio-Signature does not verify.")
    return dict(params)


class Twilio(Provider):
    name = "twilio"
    reusable = True
    # Twilio's default opt-out handling answers these on long codes and toll-free numbers.
    answers_keywords = frozenset(
        {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "YES", "UNSTOP", "HELP", "INFO"}
    )

    def __init__(self, settings: Settings, credentials: dict[str, Any] | None = None) -> None:
        credentials = credentials or twilio_credentials(settings)
        self.account_sid = str(credentials["account_sid"])
        self.from_number = credentials.get("from_number")
        self.messaging_service_sid = credentials.get("messaging_service_sid")
        self.url = f"{settings.twilio_base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        self.status_callback = (
            f"{settings.public_base_url.rstrip('/')}/v1/webhooks/twilio/status" if settings.public_base_url else None
        )
        self.headers = urllib3.make_headers(
            basic_auth=f"{self.account_sid}:{credentials['auth_token']}", keep_alive=True
        )
        self.http = urllib3.PoolManager(
            maxsize=settings.send_concurrency,
            retries=False,
            timeout=urllib3.Timeout(connect=3.0, read=settings.provider_timeout_seconds),
        )

    @classmethod
    def status_webhook(cls, request: WebhookRequest, settings: Settings) -> list[Receipt]:
        params = _signed_params(request, settings)
        status = FINAL_STATUSES.get(params.get("MessageStatus", ""))
        if status is None or not params.get("MessageSid"):
            return []  # progress (queued, sending, sent): nothing to apply
        delivered = status == "delivered"
        return [
            Receipt(
                external_id=params["MessageSid"][:100],
                status="delivered" if delivered else "undelivered",
                timestamp=datetime.now(UTC),
                error_code=None if delivered else (params.get("ErrorCode") or params["MessageStatus"])[:50],
                error_message=None if delivered else (params.get("ErrorMessage") or None),
            )
        ]

    @classmethod
    def inbound_webhook(cls, request: WebhookRequest, settings: Settings) -> list[InboundMessage]:
        params = _signed_params(request, settings)
        sid, sender, to, body = (params.get(name, "") for name in ("MessageSid", "From", "To", "Body"))
        if not 1 <= len(sid) <= 100 or not _E164.fullmatch(sender) or len(body) > 1600 or len(to) > 50:
            raise InvalidInputError("The inbound message lacks MessageSid, From or Body.")
        return [
            InboundMessage(
                external_id=sid,
                from_number=sender,
                to_number=to or None,
                body=body,
                received_at=datetime.now(UTC),
            )
        ]

    @classmethod
    def inbound_reply(cls, accepted: int) -> WebhookReply:
        """TwiML: an empty Response sends no reply to the recipient."""
        return WebhookReply("text/xml", _TWIML_EMPTY)

    def send(self, message: OutboundMessage) -> str:
        fields = {"To": message.to, "Body": message.body}
        if message.sender_id:
            fields["From"] = message.sender_id
        elif self.messaging_service_sid:
            fields["MessagingServiceSid"] = str(self.messaging_service_sid)
        elif self.from_number:
            fields["From"] = str(self.from_number)
        if self.status_callback:
            fields["StatusCallback"] = self.status_callback
        if message.validity_seconds is not None:  # Twilio's queue keeps a message 1 to 36,000 s
            fields["ValidityPeriod"] = str(min(max(message.validity_seconds, 1), 36_000))
        try:
            response = self.http.request("POST", self.url, fields=fields, encode_multipart=False, headers=self.headers)
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            raise ProviderError("connection_failed", str(exc)[:500], transient=True) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderError(
                "answer_lost", f"Twilio's answer was lost ({type(exc).__name__}).", transient=False, in_doubt=True
            ) from exc
        try:
            answer = json.loads(response.data or b"{}")
        except ValueError:
            answer = {}
        if 200 <= response.status < 300 and answer.get("sid"):
            return str(answer["sid"])
        code = answer.get("code") or response.status
        text = str(answer.get("message") or f"HTTP {response.status}")[:500]
        if response.status >= 500:  # it reached Twilio, which may have queued it before failing
            raise ProviderError(str(code), text, transient=False, in_doubt=True)
        raise ProviderError(
            str(code),
            text,
            transient=response.status == 429 or code in _TRANSIENT_CODES,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )


def _retry_after(header: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by Twilio), capped at SQS's 15 minutes."""
    try:
        return min(900.0, max(0.0, float(header))) if header else None
    except ValueError:
        return None
