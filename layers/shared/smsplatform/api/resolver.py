"""Builds the resolver every API function serves its routers with."""

import json
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.encoders import jsonable_encoder
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsplatform.api import problems, request_checks
from smsplatform.api.context import authorizer_context
from smsplatform.core import db, idempotency
from smsplatform.core.errors import DomainError
from smsplatform.core.observability import logger

API_TITLE = "Bulk SMS Platform API"
API_VERSION = "1.0.0"
BEARER_SCHEME = "bearer"
# The OpenAPI `security` of routes behind the authorizer.
BEARER: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]


class PlatformResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, refusing unusable input (`request_checks`) before any route or validation."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        error = request_checks.unusable_input(APIGatewayProxyEventV2(dict(event)))
        if error is None:
            return super().resolve(event, context)
        logger.info("request refused", extra={"route": event.get("routeKey"), "status": error.status})
        response = problems.problem(error.status, error.slug, error.title, error.detail, errors=error.errors)
        return {
            "statusCode": response.status_code,
            "headers": {"Content-Type": problems.PROBLEM_CONTENT_TYPE},
            "body": response.body,
            "isBase64Encoded": False,
        }


def create_resolver(*routers: Router) -> APIGatewayHttpResolver:
    app = PlatformResolver(enable_validation=True)
    app.configure_openapi(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "Contacts, campaigns and messages for bulk SMS. Authenticate with `Authorization: Bearer <token>`: "
            "a session token from `POST /v1/auth/login` or an API token. Errors are RFC 9457 problem+json. "
            "Authenticated POSTs accept an `Idempotency-Key` header: a retry with the same key and request "
            "gets the first response (marked `Idempotent-Replayed: true`) for 24 hours instead of acting twice."
        ),
        security_schemes={BEARER_SCHEME: HTTPBearer(bearerFormat="JWT or API token")},
    )
    problems.register(app)
    app.use(middlewares=[access_log, idempotent_posts])
    for router in routers:
        app.include_router(router)
    return app


def access_log(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[object]:
    """One line per request: route, caller, outcome and duration. Never headers or bodies."""
    event = app.current_event
    authorizer = authorizer_context(event)
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


def idempotent_posts(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[object]:
    """Honours Idempotency-Key on authenticated POSTs: a retry gets the first response, not a second effect."""
    event = app.current_event
    key = event.headers.get("idempotency-key")
    authorizer = authorizer_context(event)
    if event.http_method != "POST" or key is None or not authorizer.get("user_id"):
        return next_middleware(app)
    user_id = UUID(authorizer["user_id"])
    raw_body = event.decoded_body or ""
    request = idempotency.fingerprint(
        str(event.raw_event.get("routeKey")),
        str(event.raw_event.get("rawQueryString") or ""),
        raw_body if isinstance(raw_body, str) else raw_body.decode(errors="replace"),
    )
    with db.transaction() as conn:
        stored = idempotency.claim(conn, user_id, key, request)
    if stored is not None:
        return Response(
            status_code=stored.status,
            content_type=stored.headers.get("Content-Type"),
            body=stored.body,
            headers={**stored.headers, "Idempotent-Replayed": "true"},
        )
    try:
        response = next_middleware(app)
    except Exception:
        # Errors change nothing (bad input, a refused action): the key is free for a corrected retry.
        with db.transaction() as conn:
            idempotency.release(conn, user_id, key)
        raise
    with db.transaction() as conn:
        if response.status_code >= 500:
            idempotency.release(conn, user_id, key)
        else:
            body = response.body
            if body is None:
                text = ""
            elif isinstance(body, bytes | str):
                text = body.decode() if isinstance(body, bytes) else body
            else:
                text = json.dumps(jsonable_encoder(body), separators=(",", ":"))
            idempotency.complete(
                conn,
                user_id,
                key,
                idempotency.StoredResponse(
                    response.status_code, idempotency.headers_to_keep(response.headers or {}), text
                ),
            )
    return response
