"""Every router the API serves, for documents that describe the whole API."""

from aws_lambda_powertools.event_handler.api_gateway import Router


def all_routers() -> list[Router]:
    from smsplatform.api.accounts import accounts_routes
    from smsplatform.api.admin import admin_routes
    from smsplatform.api.audit_logs import audit_log_routes
    from smsplatform.api.billing import billing_routes
    from smsplatform.api.campaigns import campaigns_routes
    from smsplatform.api.contacts import contacts_routes
    from smsplatform.api.exports import exports_routes
    from smsplatform.api.groups import groups_routes
    from smsplatform.api.health_and_docs import health_and_docs_routes
    from smsplatform.api.inbound_settings import inbound_settings_routes
    from smsplatform.api.messages import messages_routes
    from smsplatform.api.opt_outs import opt_outs_routes
    from smsplatform.api.pricing import pricing_routes
    from smsplatform.api.status_callbacks import status_callback_routes
    from smsplatform.api.tokens import tokens_routes
    from smsplatform.api.webhooks import webhooks_routes

    return [
        health_and_docs_routes(),
        accounts_routes(),
        tokens_routes(),
        billing_routes(),
        admin_routes(),
        audit_log_routes(),
        status_callback_routes(),
        inbound_settings_routes(),
        pricing_routes(),
        contacts_routes(),
        groups_routes(),
        opt_outs_routes(),
        campaigns_routes(),
        messages_routes(),
        exports_routes(),
        webhooks_routes(),
    ]
