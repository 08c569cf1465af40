"""Every minute: releases scheduled campaigns whose time has come and re-announces lost work
(requests never announced, status callbacks whose announcement was lost)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.campaigns import campaigns
from smsplatform.core import db, queues
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendBatch
from smsplatform.sending import messages, status_callbacks


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with db.transaction() as conn:
        released = campaigns.release_due(conn)
        lost = messages.unannounced_requests(conn)
        overdue = status_callbacks.overdue_accounts(conn)
    if lost:
        queues.send_many("send", (SendBatch(kind="request", id=request_id, batch=0) for request_id in lost))
    status_callbacks.announce(overdue)
    result = {
        "campaigns_released": len(released),
        "requests_reannounced": len(lost),
        "callback_accounts_reannounced": len(overdue),
    }
    logger.info("scheduler tick", extra=result)
    return result
