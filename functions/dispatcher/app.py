"""Dispatches released campaigns: one release message per SQS record."""

import json
from typing import Any
from uuid import UUID

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform import db
from smsplatform.config import get_settings
from smsplatform.dispatch import dispatch
from smsplatform.observability import logger

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    campaign_id = UUID(json.loads(record.body)["campaign_id"])
    with db.transaction() as conn:
        dispatch(conn, campaign_id, get_settings())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
