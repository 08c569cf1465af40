"""Sends batches: one batch descriptor per SQS record; failed records alone return to the queue."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger, metrics
from smsplatform.core.queue_messages import SendBatchRecord
from smsplatform.sending.sender import process_batch

processor = BatchProcessor(event_type=EventType.SQS, model=SendBatchRecord, raise_on_entire_batch_failure=False)


def record_handler(record: SendBatchRecord) -> None:
    outcome = process_batch(record.body, get_settings())
    metrics.add_metric(name="MessagesSent", unit="Count", value=outcome.accepted)
    metrics.add_metric(name="MessagesFailed", unit="Count", value=outcome.failed)
    metrics.add_metric(name="MessagesRetrying", unit="Count", value=outcome.retrying)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
