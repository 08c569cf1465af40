"""Lambda authorizer of the HTTP API: resolves the bearer credential to a principal."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.api.authorizer import authorize
from smsplatform.core import process
from smsplatform.core.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)


process.initialised()
