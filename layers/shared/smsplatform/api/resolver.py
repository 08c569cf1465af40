"""Builds the resolver every API function serves its routers with."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from smsplatform.api import problems

API_TITLE = "Bulk SMS Platform API"
API_VERSION = "1.0.0"
BEARER_SCHEME = "bearer"


def create_resolver(*routers: Router) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    app.configure_openapi(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "Contacts, campaigns and messages for bulk SMS. Authenticate with `Authorization: Bearer <token>`: "
            "a session token from `POST /v1/auth/login` or an API token. Errors are RFC 9457 problem+json."
        ),
        security_schemes={BEARER_SCHEME: HTTPBearer(bearerFormat="JWT or API token")},
    )
    problems.register(app)
    for router in routers:
        app.include_router(router)
    return app
