"""Custom resource: applies the sql/ migrations shipped in the shared layer on every deploy."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.core import process
from smsplatform.core.custom_resources import handle_migrations
from smsplatform.core.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_migrations(event, context.log_stream_name)


process.initialised()
