"""Builds the resolver every API function serves its routers with."""

import time

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from smsplatform.api import problems
from smsplatform.errors import DomainError
from smsplatform.observability import logger

API_TITLE = "Bulk SMS Platform API"
API_VERSION = "1.0.0"
BEARER_SCHEME = "bearer"
# The OpenAPI `security` of routes behind the authorizer.
BEARER: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]


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
    app.use(middlewares=[access_log])
    for router in routers:
        app.include_router(router)
    return app


def access_log(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[object]:
    """One line per request: route, caller, outcome and duration. Never headers or bodies."""
    event = app.current_event
    authorizer = (event.raw_event.get("requestContext", {}).get("authorizer") or {}).get("lambda") or {}
    fields = {
        "method": event.http_method,
        "route": event.raw_event.get("routeKey"),
        "user_id": authorizer.get("user_id"),
    }
    started = time.perf_counter()
    try:
        response = next_middleware(app)
    except DomainError as error:
        fields.update(status=error.status, problem=error.slug)
        raise
    except Exception:
        fields.update(status=500)
        raise
    else:
        fields.update(status=response.status_code)
        return response
    finally:
        logger.info("request", extra={**fields, "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
