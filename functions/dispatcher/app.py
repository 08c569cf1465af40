"""Dispatches released campaigns: one release message per SQS record."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import db, process
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import ReleaseRecord
from smsplatform.sending.dispatch import dispatch

processor = BatchProcessor(event_type=EventType.SQS, model=ReleaseRecord, raise_on_entire_batch_failure=False)


def record_handler(record: ReleaseRecord) -> None:
    with db.transaction() as conn:
        dispatch(conn, record.body.campaign_id, get_settings())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


process.initialised()
