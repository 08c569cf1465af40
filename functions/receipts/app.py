"""Applies delivery receipts and inbound messages in batches; receipts for messages not recorded yet are retried.

A record is either what a webhook enqueued ({"provider", "receipts"} or
{"provider", "inbound"}) or an Amazon SNS notification delivered by the
End User Messaging events topic's subscription (authenticated by the queue
policy, so no signature to check here).
"""

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform import db, inbound, receipts, status_callbacks
from smsplatform.observability import logger
from smsplatform.providers import aws_sms

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class ReceiptsNotYetApplicableError(Exception):
    """Some receipts name messages whose send is not recorded yet: retry the record later."""


def _from_sns(envelope: dict[str, Any]) -> dict[str, Any]:
    event = json.loads(envelope["Message"])
    receipt = aws_sms.event_to_receipt(event)
    message = aws_sms.event_to_inbound(event)
    return {
        "provider": aws_sms.AwsSms.name,
        "receipts": [asdict(receipt)] if receipt else [],
        "inbound": [asdict(message)] if message else [],
    }


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    if message.get("Type") == "Notification" and "TopicArn" in message:
        message = _from_sns(message)
    provider = message["provider"]
    batch = [
        receipts.Receipt(**{**entry, "timestamp": _time(entry["timestamp"])}) for entry in message.get("receipts", [])
    ]
    messages = [
        inbound.InboundMessage(**{**entry, "received_at": _time(entry["received_at"])})
        for entry in message.get("inbound", [])
    ]
    with db.transaction() as conn:
        applied = receipts.apply(conn, provider, batch) if batch else None
        if messages:
            inbound.apply(conn, provider, messages)
        due = status_callbacks.accounts_due(conn, applied.accounts) if applied else []
    status_callbacks.announce(due)
    if applied and applied.unknown:
        raise ReceiptsNotYetApplicableError(f"{len(applied.unknown)} receipts name unknown messages")


def _time(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
