"""The Twilio-compatible Messages API (/2010-04-01/Accounts/{AccountSid}/Messages), for Twilio's SDKs."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.api.twilio_messages import create_twilio_resolver
from smsplatform.core import process
from smsplatform.core.observability import logger

app = create_twilio_resolver()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


process.initialised()
