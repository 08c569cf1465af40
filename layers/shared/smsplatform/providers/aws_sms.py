"""AWS End User Messaging SMS (`pinpoint-sms-voice-v2` SendTextMessage), and its delivery and inbound events.

Delivery events come from the configuration set's SNS event destination, and
inbound messages from the origination number's two-way channel (the same
topic). The topic is subscribed to the receipts queue (and may also post to
`/v1/webhooks/aws_sms/...`, signature-checked); `event_to_receipt` and
`event_to_inbound` turn either into the platform's terms.
"""

import json
from datetime import UTC, datetime
from typing import Any

from smsplatform.core.config import Settings
from smsplatform.core.errors import InvalidInputError, PermissionDeniedError
from smsplatform.core.queue_messages import InboundMessage, ProviderEvents, Receipt, SnsNotification
from smsplatform.providers import aws_calls
from smsplatform.providers.base import OutboundMessage, Provider, WebhookRequest

# Error codes after which another attempt (or the next provider) may succeed.
_TRANSIENT = {"ThrottlingException", "ServiceQuotaExceededException"}


class AwsSms(Provider):
    name = "aws_sms"
    reusable = True
    # End User Messaging answers its mandatory keywords with the number's own keyword messages.
    answers_keywords = frozenset({"STOP", "HELP"})

    def __init__(self, settings: Settings, sms_client: Any = None) -> None:
        self.client = sms_client or aws_calls.client("pinpoint-sms-voice-v2", settings)
        self.configuration_set = settings.aws_sms_configuration_set
        self.origination_identity = settings.aws_sms_origination_identity

    def send(self, message: OutboundMessage) -> str:
        params: dict[str, Any] = {
            "DestinationPhoneNumber": message.to,
            "MessageBody": message.body,
            "MessageType": "TRANSACTIONAL",
            "Context": {"message_id": str(message.id)},
        }
        origin = message.sender_id or self.origination_identity
        if origin:
            params["OriginationIdentity"] = origin
        if self.configuration_set:
            params["ConfigurationSetName"] = self.configuration_set
        if message.validity_seconds is not None:  # End User Messaging takes 5 to 259,200 s
            params["TimeToLive"] = min(max(message.validity_seconds, 5), 259_200)
        return str(aws_calls.call(self.client.send_text_message, _TRANSIENT, **params)["MessageId"])

    @classmethod
    def status_webhook(cls, request: WebhookRequest, settings: Settings) -> list[Receipt]:
        event = _verified_event(request, settings)
        receipt = event_to_receipt(event) if event else None
        return [receipt] if receipt else []

    @classmethod
    def inbound_webhook(cls, request: WebhookRequest, settings: Settings) -> list[InboundMessage]:
        event = _verified_event(request, settings)
        message = event_to_inbound(event) if event else None
        return [message] if message else []


def _verified_event(request: WebhookRequest, settings: Settings) -> dict[str, Any] | None:
    """The event in a verified SNS notification posted to a webhook; None for a (now confirmed) subscription."""
    from smsplatform.providers import sns_messages  # cryptography: only the webhook pays for importing it

    try:
        envelope = json.loads(request.body)
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
        event = json.loads(envelope["Message"])
    except ValueError as exc:
        raise InvalidInputError("The notification's Message is not JSON.") from exc
    return event if isinstance(event, dict) else None


def notification_events(notification: SnsNotification) -> ProviderEvents:
    """The events topic's notification, delivered by its SQS subscription (the queue policy admits only the topic)."""
    receipt = event_to_receipt(notification.message)
    message = event_to_inbound(notification.message)
    return ProviderEvents(
        provider=AwsSms.name, receipts=[receipt] if receipt else [], inbound=[message] if message else []
    )


def _at(milliseconds: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(milliseconds) / 1000, UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def event_to_receipt(event: dict[str, Any]) -> Receipt | None:
    """A final delivery event as a receipt; progress events (pending, queued, successful) as None."""
    if not event.get("isFinal") or not event.get("messageId"):
        return None
    status = str(event.get("messageStatus") or "")
    if status in ("SUCCESSFUL", "UNKNOWN"):  # the carrier took it but gives no handset receipt (or none came)
        return None
    delivered = status == "DELIVERED"
    return Receipt(
        external_id=str(event["messageId"]),
        status="delivered" if delivered else "undelivered",
        timestamp=_at(event.get("eventTimestamp")),
        error_code=None if delivered else (str(event.get("eventType") or status)[:50] or None),
        error_message=None if delivered else (str(event.get("messageStatusDescription") or "")[:500] or None),
    )


def event_to_inbound(event: dict[str, Any]) -> InboundMessage | None:
    """A two-way channel message as an inbound message; None when it is not one."""
    if not event.get("originationNumber") or "messageBody" not in event or not event.get("inboundMessageId"):
        return None
    return InboundMessage(
        external_id=str(event["inboundMessageId"]),
        from_number=str(event["originationNumber"]),
        to_number=str(event.get("destinationNumber") or "") or None,
        body=str(event["messageBody"]),
        received_at=datetime.now(UTC),
        reply_to_external_id=str(event.get("previousPublishedMessageId") or "") or None,
    )
