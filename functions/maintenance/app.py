"""Daily maintenance on the EventBridge schedule: delivery-log partitions ahead of time."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform import db
from smsplatform.maintenance import create_delivery_log_partitions
from smsplatform.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with db.transaction() as conn:
        created = create_delivery_log_partitions(conn)
    logger.info("maintenance done", extra={"partitions_created": created})
    return {"partitions_created": created}
