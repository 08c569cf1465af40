"""Operator actions invoked directly (aws lambda invoke), from outside the VPC, never through the API.

Only principals allowed lambda:InvokeFunction on this function can run it.
The event carries a password for new accounts, so it is never logged.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.accounts.admin_cli import run_operator_action
from smsplatform.core import process
from smsplatform.core.observability import logger


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_operator_action(event)


process.initialised()
