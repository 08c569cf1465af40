"""Runs contact imports: S3 "object created" events for imports/ arrive through SQS."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.contacts.imports.runs import process_uploaded_file
from smsplatform.core import process
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import ImportFileRecord

processor = BatchProcessor(event_type=EventType.SQS, model=ImportFileRecord, raise_on_entire_batch_failure=False)


def record_handler(record: ImportFileRecord) -> None:
    # S3 also sends an s3:TestEvent without Records when the notification is configured.
    for entry in record.body.records:
        process_uploaded_file(entry.s3.bucket.name, entry.s3.object.key)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


process.initialised()
