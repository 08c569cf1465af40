"""Every router the API serves, for documents that describe the whole API."""

from aws_lambda_powertools.event_handler.api_gateway import Router


def all_routers() -> list[Router]:
    from smsplatform.api.accounts import accounts_routes
    from smsplatform.api.health_and_docs import health_and_docs_routes

    return [health_and_docs_routes(), accounts_routes()]
