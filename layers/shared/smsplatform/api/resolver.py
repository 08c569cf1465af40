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
from smsplatform.api.context import WITHHOLD_FROM_REPLAY, authorizer_context
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
        return self.refusal(error)

    def refusal(self, error: DomainError) -> dict[str, Any]:
        """The response to input refused before any route: problem+json."""
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
    """Honours Idempotency-Key on authenticated POSTs: a retry by the same credential gets the first response,
    not a second effect. A response carrying a secret (see `withhold_from_replay`) is not stored."""
    event = app.current_event
    key = event.headers.get("idempotency-key")
    authorizer = authorizer_context(event)
    if event.http_method != "POST" or key is None or not authorizer.get("user_id"):
        return next_middleware(app)
    user_id = UUID(authorizer["user_id"])
    credential = str(authorizer.get("credential_id") or authorizer.get("credential") or "")
    raw_body = event.decoded_body or ""
    request = idempotency.fingerprint(
        str(event.raw_event.get("routeKey")),
        str(event.raw_event.get("rawQueryString") or ""),
        raw_body if isinstance(raw_body, str) else raw_body.decode(errors="replace"),
    )
    with db.transaction() as conn:
        stored = idempotency.claim(conn, user_id, credential, key, request)
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
            idempotency.release(conn, user_id, credential, key)
        raise
    with db.transaction() as conn:
        if response.status_code >= 500:
            idempotency.release(conn, user_id, credential, key)
        else:
            body = response.body
            if body is None:
                text = ""
            elif isinstance(body, bytes | str):
                text = body.decode() if isinstance(body, bytes) else body
            else:
                text = json.dumps(jsonable_encoder(body), separators=(",", ":"))
            kept = (
                _withheld(response.status_code, text)
                if app.context.get(WITHHOLD_FROM_REPLAY)
                else idempotency.StoredResponse(
                    response.status_code, idempotency.headers_to_keep(response.headers or {}), text
                )
            )
            idempotency.complete(conn, user_id, credential, key, kept)
    return response


def _withheld(status: int, body: str) -> idempotency.StoredResponse:
    """What a retry of a secret-bearing request gets instead: a 409 naming what the first one created."""
    try:
        created = json.loads(body).get("id") if body else None
    except (ValueError, AttributeError):
        created = None
    answer = problems.problem(
        409,
        "idempotent-secret-withheld",
        "Conflict",
        f"The first request with this Idempotency-Key succeeded ({status}); its response held a secret that "
        "is shown once and never stored. Use what it returned, or create another"
        + (f" and revoke {created}." if created else "."),
    )
    return idempotency.StoredResponse(409, {"Content-Type": problems.PROBLEM_CONTENT_TYPE}, str(answer.body))
