"""Contacts API: contacts, groups, imports and opt-outs."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.api.contacts import contacts_routes
from smsplatform.api.groups import groups_routes
from smsplatform.api.opt_outs import opt_outs_routes
from smsplatform.api.resolver import create_resolver
from smsplatform.core import process
from smsplatform.core.observability import logger

app = create_resolver(contacts_routes(), groups_routes(), opt_outs_routes())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


process.initialised()
