"""Twilio's Messages REST API over plain HTTPS: form-encoded, Basic auth, pooled keep-alive connections.

Twilio has no idempotency key for sending, so a call whose answer never came
back (a read timeout, a dropped connection after the request went out) fails
as `outcome_unknown` instead of being retried into a second copy. A call that
never reached Twilio (no connection) is transient, as are 429 and 5xx answers.
Receipts come back to `/v1/webhooks/twilio/status`, signed with the account's
auth token (`X-Twilio-Signature`).
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

import urllib3

from smsplatform.config import Settings
from smsplatform.providers import OutboundMessage, Provider, ProviderError
from smsplatform.secret_store import twilio_credentials

SIGNATURE_HEADER = "X-Twilio-Signature"
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


class Twilio(Provider):
    name = "twilio"
    reusable = True

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
        try:
            response = self.http.request("POST", self.url, fields=fields, encode_multipart=False, headers=self.headers)
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            raise ProviderError("connection_failed", str(exc)[:500], transient=True) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderError(
                "outcome_unknown", f"Twilio's answer was lost ({type(exc).__name__}); not resent.", transient=False
            ) from exc
        try:
            answer = json.loads(response.data or b"{}")
        except ValueError:
            answer = {}
        if 200 <= response.status < 300 and answer.get("sid"):
            return str(answer["sid"])
        code = answer.get("code") or response.status
        text = str(answer.get("message") or f"HTTP {response.status}")[:500]
        transient = response.status == 429 or response.status >= 500 or code in _TRANSIENT_CODES
        raise ProviderError(str(code), text, transient=transient)
