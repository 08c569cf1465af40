"""Applies delivery receipts and inbound messages in batches; receipts for messages not recorded yet are retried.

A record is either what a webhook or the simulator enqueued (`ProviderEvents`)
or an Amazon SNS notification delivered by the End User Messaging events
topic's subscription (authenticated by the queue policy, so no signature to
check here).
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import process
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import ProviderEvents, ProviderEventsRecord
from smsplatform.providers import aws_sms
from smsplatform.sending import receipts

processor = BatchProcessor(event_type=EventType.SQS, model=ProviderEventsRecord, raise_on_entire_batch_failure=False)


def record_handler(record: ProviderEventsRecord) -> None:
    body = record.body
    receipts.apply_events(body if isinstance(body, ProviderEvents) else aws_sms.notification_events(body))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


process.initialised()
