"""Runs contact imports: S3 "object created" events for imports/ arrive through SQS."""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.contact_imports import process_uploaded_file
from smsplatform.observability import logger

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    # S3 also sends an s3:TestEvent without Records when the notification is configured.
    for entry in json.loads(record.body).get("Records", []):
        process_uploaded_file(entry["s3"]["bucket"]["name"], entry["s3"]["object"]["key"])


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
