"""AWS End User Messaging SMS (`pinpoint-sms-voice-v2` SendTextMessage), and its delivery and inbound events.

Delivery events come from the configuration set's SNS event destination, and
inbound messages from the origination number's two-way channel (the same
topic). The topic is subscribed to the receipts queue (and may also post to
`/v1/webhooks/aws_sms/...`, signature-checked); `event_to_receipt` and
`event_to_inbound` turn either into the platform's terms.
"""

from datetime import UTC, datetime
from typing import Any

from smsplatform.config import Settings
from smsplatform.inbound import InboundMessage
from smsplatform.providers import OutboundMessage, Provider, aws_calls
from smsplatform.receipts import Receipt

# Error codes after which another attempt (or the next provider) may succeed.
_TRANSIENT = {"ThrottlingException", "InternalServerException", "ServiceQuotaExceededException"}


class AwsSms(Provider):
    name = "aws_sms"
    reusable = True

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
        return str(aws_calls.call(self.client.send_text_message, _TRANSIENT, **params)["MessageId"])


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
