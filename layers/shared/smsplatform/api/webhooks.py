"""Provider webhooks: public routes, authenticated by the provider's signature, not a bearer token.

A webhook only checks the signature and the shape, then enqueues; the receipts
function applies receipts and inbound messages in batches. A missing or forged
signature is refused with 403 before anything is enqueued.

- simulator: JSON, `X-Simulator-Signature: sha256=<hex HMAC of the body>`;
- twilio: form-encoded, `X-Twilio-Signature` (HMAC-SHA1 of the URL and sorted parameters, keyed by the auth token);
- aws_sms: Amazon SNS notifications (delivery events of End User Messaging SMS, two-way inbound), checked against
  SNS's signing certificate and the configured topics; a subscription confirmation is confirmed.
"""

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, Field, ValidationError

from smsplatform import queues, sns_messages
from smsplatform.api.context import http_event
from smsplatform.config import Settings, get_settings
from smsplatform.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from smsplatform.inbound import InboundMessage
from smsplatform.providers import aws_sms, simulator, twilio
from smsplatform.receipts import Receipt
from smsplatform.secret_store import simulator_signing_key, twilio_credentials

MAX_PER_CALL = 1000
_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class ReceiptIn(BaseModel):
    external_id: Annotated[str, Field(min_length=1, max_length=100)]
    status: Literal["delivered", "undelivered"]
    timestamp: datetime
    error_code: Annotated[str, Field(max_length=50)] | None = None
    error_message: Annotated[str, Field(max_length=500)] | None = None


class SimulatorReceipts(BaseModel):
    receipts: Annotated[list[ReceiptIn], Field(min_length=1, max_length=MAX_PER_CALL)]


class InboundIn(BaseModel):
    external_id: Annotated[str, Field(min_length=1, max_length=100)]
    from_number: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{1,14}$")]
    to_number: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    body: Annotated[str, Field(max_length=1600)]
    received_at: datetime | None = None


class SimulatorInbound(BaseModel):
    messages: Annotated[list[InboundIn], Field(min_length=1, max_length=MAX_PER_CALL)]


class Accepted(BaseModel):
    accepted: int


def _raw_body(event: APIGatewayProxyEventV2) -> bytes:
    raw = event.decoded_body or ""
    return raw.encode() if isinstance(raw, str) else raw


def _request_url(event: APIGatewayProxyEventV2, settings: Settings) -> str:
    """The URL the provider called, as it signed it: our public base URL (or the Host) and the raw path and query."""
    base = (settings.public_base_url or f"https://{event.headers.get('host', '')}").rstrip("/")
    query = event.raw_query_string
    return f"{base}{event.raw_path}" + (f"?{query}" if query else "")


def _simulator_body(event: APIGatewayProxyEventV2, settings: Settings) -> bytes:
    body = _raw_body(event)
    signature = event.headers.get(simulator.SIGNATURE_HEADER.lower())
    if not simulator.verify(simulator_signing_key(settings), body, signature):
        raise PermissionDeniedError("The request's X-Simulator-Signature does not verify.")
    return body


def _twilio_params(event: APIGatewayProxyEventV2, settings: Settings) -> dict[str, str]:
    try:
        token = str(twilio_credentials(settings)["auth_token"])
    except RuntimeError as exc:  # no secret, or the template's empty placeholder
        raise NotFoundError("Twilio is not configured on this platform.") from exc
    params = parse_qsl(_raw_body(event).decode("utf-8", "replace"), keep_blank_values=True)
    given = event.headers.get(twilio.SIGNATURE_HEADER.lower())
    if not twilio.verify(token, _request_url(event, settings), params, given):
        raise PermissionDeniedError("The request's X-Twilio-Signature does not verify.")
    return dict(params)


def _sns_message(event: APIGatewayProxyEventV2, settings: Settings) -> dict[str, Any] | None:
    """The verified SNS notification's payload; None for a (now confirmed) subscription confirmation."""
    try:
        envelope = json.loads(_raw_body(event))
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not sns_messages.verify(envelope, settings.aws_sns_topic_arns):
        raise PermissionDeniedError("The notification is not signed by Amazon SNS for a configured topic.")
    if envelope["Type"] == "SubscriptionConfirmation":
        sns_messages.confirm_subscription(envelope)
        return None
    if envelope["Type"] != "Notification":
        return None
    try:
        payload = json.loads(envelope["Message"])
    except ValueError as exc:
        raise InvalidInputError("The notification's Message is not JSON.") from exc
    return payload if isinstance(payload, dict) else None


def _enqueue_receipts(provider: str, receipts: list[Receipt]) -> int:
    if receipts:
        queues.send(
            "receipts",
            {
                "provider": provider,
                "receipts": [{**asdict(receipt), "timestamp": receipt.timestamp.isoformat()} for receipt in receipts],
            },
        )
    return len(receipts)


def _enqueue_inbound(provider: str, messages: list[InboundMessage]) -> int:
    if messages:
        queues.send(
            "receipts",
            {
                "provider": provider,
                "inbound": [{**asdict(m), "received_at": m.received_at.isoformat()} for m in messages],
            },
        )
    return len(messages)


def _status(provider: str, event: APIGatewayProxyEventV2, settings: Settings) -> list[Receipt]:
    if provider == simulator.Simulator.name:
        body = _simulator_body(event, settings)
        return [Receipt(**r.model_dump()) for r in SimulatorReceipts.model_validate_json(body).receipts]
    if provider == "twilio":
        params = _twilio_params(event, settings)
        status = twilio.FINAL_STATUSES.get(params.get("MessageStatus", ""))
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
    if provider == aws_sms.AwsSms.name:
        payload = _sns_message(event, settings)
        receipt = aws_sms.event_to_receipt(payload) if payload else None
        return [receipt] if receipt else []
    raise NotFoundError(f"No receipts are taken from {provider!r}.")


def _inbound(provider: str, event: APIGatewayProxyEventV2, settings: Settings) -> list[InboundMessage]:
    now = datetime.now(UTC)
    if provider == simulator.Simulator.name:
        body = _simulator_body(event, settings)
        return [
            InboundMessage(m.external_id, m.from_number, m.to_number, m.body, m.received_at or now)
            for m in SimulatorInbound.model_validate_json(body).messages
        ]
    if provider == "twilio":
        params = _twilio_params(event, settings)
        try:
            message = InboundIn(
                external_id=params.get("MessageSid", ""),
                from_number=params.get("From", ""),
                to_number=params.get("To") or None,
                body=params.get("Body", ""),
            )
        except ValidationError as exc:
            raise InvalidInputError("The inbound message lacks MessageSid, From or Body.") from exc
        return [InboundMessage(message.external_id, message.from_number, message.to_number, message.body, now)]
    if provider == aws_sms.AwsSms.name:
        payload = _sns_message(event, settings)
        inbound = aws_sms.event_to_inbound(payload) if payload else None
        return [inbound] if inbound else []
    raise NotFoundError(f"No inbound messages are taken from {provider!r}.")


def webhooks_routes() -> Router:
    router = Router()

    @router.post(
        "/v1/webhooks/<provider>/status",
        tags=["Webhooks"],
        summary="Delivery receipts from a provider",
        description="Authenticated by the provider's signature; a missing or forged one is refused with 403.",
    )
    def status(provider: str) -> Accepted:
        receipts = _status(provider, http_event(router), get_settings())
        return Accepted(accepted=_enqueue_receipts(provider, receipts))

    @router.post(
        "/v1/webhooks/<provider>/inbound",
        tags=["Webhooks"],
        summary="Messages recipients send back",
        description=(
            "STOP, STOPALL, UNSUBSCRIBE, CANCEL, END or QUIT put the sender on the opt-out list of the account "
            "that messaged them; START or UNSTOP take them off. Authenticated by the provider's signature."
        ),
    )
    def inbound(provider: str) -> Response[str]:
        accepted = _enqueue_inbound(provider, _inbound(provider, http_event(router), get_settings()))
        if provider == "twilio":  # Twilio expects TwiML: an empty Response sends no reply
            return Response(status_code=200, content_type="text/xml", body=_TWIML_EMPTY)
        return Response(
            status_code=200, content_type="application/json", body=Accepted(accepted=accepted).model_dump_json()
        )

    return router
