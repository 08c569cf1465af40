"""Every minute: releases scheduled campaigns whose time has come, wakes messages whose sending window
opened or whose scheduled time came, expires those past their validity period, recovers lost work (batches no queue
message will come back for, rows of stopped campaigns, status callbacks whose announcement was lost), and folds the
campaigns' new counter rows."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.campaigns import campaigns
from smsplatform.core import db, process
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger
from smsplatform.sending import recovery, status_callbacks


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with db.transaction() as conn:
        released = campaigns.release_due(conn)
        campaigns.compact_message_counts(conn)
        overdue = status_callbacks.overdue_accounts(conn)
    swept = recovery.sweep(get_settings())
    status_callbacks.announce(overdue)
    result = {
        "campaigns_released": len(released),
        "batches_reannounced": swept.reannounced,
        "messages_finalised": swept.finalised,
        "settled": swept.settled,
        "messages_expired": swept.expired,
        "messages_woken": swept.woken,
        "callback_accounts_reannounced": len(overdue),
    }
    logger.info("scheduler tick", extra=result)
    return result


process.initialised()
