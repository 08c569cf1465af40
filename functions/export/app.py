"""Builds exports from ExportQueue: COPY out of PostgreSQL, gzip, upload to S3 (sending/exports.py).

One export per invocation (BatchSize 1). A record that fails returns to the queue and, after repeated
failures, lands in the DLQ; the scheduler's sweep then fails the export, so it never stays running.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import process
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import ExportRequestedRecord
from smsplatform.sending import exports

processor = BatchProcessor(event_type=EventType.SQS, model=ExportRequestedRecord, raise_on_entire_batch_failure=False)


def record_handler(record: ExportRequestedRecord) -> None:
    exports.run(record.body.export_id, get_settings())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


process.initialised()
