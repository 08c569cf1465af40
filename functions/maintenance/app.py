"""Daily maintenance on the EventBridge schedule: delivery-log partitions ahead; stale login failures,
idempotency keys and settled status callbacks out."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.accounts import login_throttle
from smsplatform.core import db, idempotency
from smsplatform.core.maintenance import create_delivery_log_partitions
from smsplatform.core.observability import logger
from smsplatform.sending import status_callbacks


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with db.transaction() as conn:
        created = create_delivery_log_partitions(conn)
        purged = login_throttle.purge_expired(conn)
        keys = idempotency.purge_expired(conn)
        callbacks = status_callbacks.purge_settled(conn)
    result = {
        "partitions_created": created,
        "login_failures_purged": purged,
        "idempotency_keys_purged": keys,
        "status_callbacks_purged": callbacks,
    }
    logger.info("maintenance done", extra=result)
    return result
