"""Archives whole months past retention (delivery logs, audit logs) to S3, verified, then drops them.

Daily: most days nothing is due and the run is a catalog read; a missed run is caught up by the next.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import archive, process
from smsplatform.core.config import get_settings
from smsplatform.core.observability import logger, metrics
from smsplatform.sending import recovery


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    if not settings.archive_bucket:
        raise RuntimeError("no archive bucket configured: set SMS_ARCHIVE_BUCKET")
    done = archive.archive_due(settings, settings.archive_bucket, recovery.BEFORE_ARCHIVE)
    metrics.add_metric(name="MonthsArchived", unit="Count", value=len(done))
    result = {
        "archived": [{"table": a.table, "month": f"{a.month:%Y-%m}", "rows": a.rows, "bytes": a.bytes} for a in done]
    }
    logger.info("archive done", extra=result)
    return result


process.initialised()
