"""Public platform routes: health, OpenAPI document, Swagger UI."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.api.health_and_docs import health_and_docs_routes
from smsplatform.api.resolver import create_resolver
from smsplatform.core import process
from smsplatform.core.observability import logger

app = create_resolver(health_and_docs_routes())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


process.initialised()
