"""Sends batches: one batch descriptor per SQS record, the invocation's records side by side; failed
records alone return to the queue.

The records of one invocation (the event source's BatchSize) run concurrently, each on a thread with
a database connection of its own (SMS_DB_POOL_MAX_SIZE matches BatchSize in the template): while one
batch waits on PostgreSQL, another calls its provider. Each batch keeps the at-most-once claim of
ADR 0004, which already holds for any number of concurrent senders.
"""

import asyncio
from typing import Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import process
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger, metrics
from smsplatform.core.queue_messages import SendBatchRecord
from smsplatform.sending.sender import process_batch

processor = AsyncBatchProcessor(event_type=EventType.SQS, model=SendBatchRecord, raise_on_entire_batch_failure=False)


async def record_handler(record: SendBatchRecord) -> None:
    outcome = await asyncio.to_thread(process_batch, record.body, get_settings())
    # Back on the event loop's thread: the metrics are added one record at a time.
    metrics.add_metric(name="MessagesSent", unit="Count", value=outcome.accepted)
    metrics.add_metric(name="MessagesFailed", unit="Count", value=outcome.failed)
    metrics.add_metric(name="MessagesRetrying", unit="Count", value=outcome.retrying)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


process.initialised()
