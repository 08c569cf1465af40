"""CloudFormation custom resources: the schema migrations run on every deploy."""

import json
import urllib.request
from typing import Any

from smsplatform.core.config import get_settings
from smsplatform.core.db import database_conninfo
from smsplatform.core.migrations import apply_migrations
from smsplatform.core.observability import logger

PHYSICAL_ID = "sms-platform-schema-migrations"


def handle_migrations(event: dict[str, Any], log_stream_name: str) -> dict[str, Any]:
    """Applies pending migrations on Create and Update; Delete leaves the schema alone.

    Always answers CloudFormation, even on failure: an unanswered custom
    resource holds the stack for an hour.
    """
    status, data, reason = "SUCCESS", {}, ""
    try:
        if event["RequestType"] in ("Create", "Update"):
            settings = get_settings()
            applied = apply_migrations(database_conninfo(settings), settings.sql_dir)
            data = {"Applied": ",".join(applied) or "none"}
            logger.info("migrations applied", extra={"applied": applied})
    except Exception as exc:
        logger.exception("migrations failed")
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"[:500]
    response = {
        "Status": status,
        "Reason": reason or f"See CloudWatch log stream {log_stream_name}",
        "PhysicalResourceId": PHYSICAL_ID,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    _send(event["ResponseURL"], response)
    return response


def _send(url: str, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310  # CloudFormation's presigned https URL
        url, data=payload, method="PUT", headers={"content-type": "", "content-length": str(len(payload))}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()
