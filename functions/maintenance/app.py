"""Daily maintenance on the EventBridge schedule: rows out of the default partitions, partitions ahead; stale
login failures, idempotency keys, settled status callbacks and inbound messages past retention out. Each step
commits on its own."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.accounts import login_throttle
from smsplatform.core import idempotency, maintenance, process
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger, metrics
from smsplatform.sending import inbound, status_callbacks


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    results, failed = maintenance.run_steps(
        [
            ("default_partition_rows", maintenance.default_partition_rows),
            ("default_partition_rows_moved", lambda conn: maintenance.move_default_partition_rows(conn)),
            (
                "provider_ids_default_partition_rows_moved",
                lambda conn: maintenance.move_default_partition_rows(conn, "provider_message_ids"),
            ),
            ("partitions_created", lambda conn: maintenance.create_delivery_log_partitions(conn)),
            (
                "audit_default_partition_rows_moved",
                lambda conn: maintenance.move_default_partition_rows(conn, "audit_logs"),
            ),
            ("audit_partitions_created", lambda conn: maintenance.create_audit_log_partitions(conn)),
            ("login_failures_purged", lambda conn: login_throttle.purge_expired(conn)),
            ("idempotency_keys_purged", lambda conn: idempotency.purge_expired(conn)),
            (
                "status_callbacks_purged",
                lambda conn: status_callbacks.purge_settled(conn, settings.callback_retention_days),
            ),
            ("inbound_messages_purged", lambda conn: inbound.purge_expired(conn, settings.inbound_retention_days)),
        ]
    )
    # Rows found in the default partition at the start of the run: above zero, partitions were not made ahead.
    metrics.add_metric(name="DefaultPartitionRows", unit="Count", value=results.get("default_partition_rows", 0))
    result = {**results, "failed_steps": failed}
    logger.info("maintenance done", extra=result)
    if failed:  # after every other step has run and committed; the function's error alarm fires
        raise RuntimeError(f"maintenance steps failed: {', '.join(failed)}")
    return result


process.initialised()
