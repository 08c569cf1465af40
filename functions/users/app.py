"""Accounts API: sign-up, login, profile, tokens, credits, prices, operators' routes, audit trail, callbacks,
keywords."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.api.accounts import accounts_routes
from smsplatform.api.admin import admin_routes
from smsplatform.api.audit_logs import audit_log_routes
from smsplatform.api.billing import billing_routes
from smsplatform.api.inbound_settings import inbound_settings_routes
from smsplatform.api.pricing import pricing_routes
from smsplatform.api.resolver import create_resolver
from smsplatform.api.status_callbacks import status_callback_routes
from smsplatform.api.tokens import tokens_routes
from smsplatform.core import process
from smsplatform.core.observability import logger, metrics

app = create_resolver(
    accounts_routes(),
    tokens_routes(),
    billing_routes(),
    admin_routes(),
    audit_log_routes(),
    status_callback_routes(),
    inbound_settings_routes(),
    pricing_routes(),
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


process.initialised()
