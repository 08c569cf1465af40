"""Applies delivery receipts in batches; receipts for messages not recorded yet are retried."""

import json
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform import db, receipts
from smsplatform.observability import logger

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class ReceiptsNotYetApplicableError(Exception):
    """Some receipts name messages whose send is not recorded yet: retry the record later."""


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    batch = [
        receipts.Receipt(**{**entry, "timestamp": datetime.fromisoformat(entry["timestamp"])})
        for entry in message["receipts"]
    ]
    with db.transaction() as conn:
        applied = receipts.apply(conn, message["provider"], batch)
    if applied.unknown:
        raise ReceiptsNotYetApplicableError(f"{len(applied.unknown)} receipts name unknown messages")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
