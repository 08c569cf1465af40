"""Delivers customer status callbacks: one account announcement per SQS record.

Callbacks still pending after this invocation (their endpoint failed, or there
was no time left to try them) are announced again, delayed until the first is
due, before the record is acknowledged. One account per invocation (BatchSize
1): a slow endpoint holds up only its own account's callbacks. A record that
fails outright (the database is down) returns to the queue alone and, after
repeated failures, lands in the DLQ; the outbox rows stay pending and the
scheduler's sweep announces them again.
"""

import contextlib
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import process, queues
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger, metrics
from smsplatform.core.queue_messages import CallbacksDueRecord
from smsplatform.core.secret_store import callback_signing_key
from smsplatform.sending import status_callbacks

processor = BatchProcessor(event_type=EventType.SQS, model=CallbacksDueRecord, raise_on_entire_batch_failure=False)


def record_handler(record: CallbacksDueRecord, lambda_context: LambdaContext) -> None:
    settings = get_settings()
    due = record.body
    with contextlib.closing(status_callbacks.http_post(settings)) as post:
        outcome = status_callbacks.deliver(
            settings,
            callback_signing_key(settings),
            due.user_id,
            post,
            time_left=lambda: lambda_context.get_remaining_time_in_millis() / 1000,
        )
    if outcome.retry_in is not None:
        queues.send("callbacks", due, delay_seconds=max(1, outcome.retry_in))
    metrics.add_metric(name="CallbacksDelivered", unit="Count", value=outcome.delivered)
    metrics.add_metric(name="CallbacksFailed", unit="Count", value=outcome.failed)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


process.initialised()
