"""The one place errors become RFC 9457 problem+json responses."""

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import ValidationError as PydanticValidationError

from smsplatform.core.errors import DomainError, FieldError, MalformedRequestError, UnsupportedMediaTypeError
from smsplatform.core.observability import logger

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.sms-platform.dev/problems/"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": int(status), "detail": detail}
    if errors:
        body["errors"] = [{"field": error.field, "message": error.message} for error in errors]
    # Powertools serialises only application/json bodies itself.
    return Response(status_code=int(status), content_type=PROBLEM_CONTENT_TYPE, body=json.dumps(body), headers=headers)


def _field_name(location: tuple[Any, ...]) -> str:
    # Powertools locations look like ("body", "email") or ("query", "limit"); the body prefix says nothing.
    parts = [str(part) for part in location if part != "body"]
    return ".".join(parts) or "body"


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg") or error.get("type", "is invalid"))
    return message.removeprefix("Value error, ")


def from_validation_error(exc: RequestValidationError) -> Response[str]:
    details = exc.errors()
    if any(error.get("type") == "json_invalid" for error in details):
        malformed = MalformedRequestError("The request body is not valid JSON.")
        return problem(malformed.status, malformed.slug, malformed.title, malformed.detail)
    field_errors = [
        FieldError(_field_name(tuple(error.get("loc", ()))), _validation_message(error)) for error in details
    ]
    summary = "; ".join(f"{error.field}: {error.message.rstrip('.')}" for error in field_errors[:5])
    return problem(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation-error",
        "Invalid input",
        f"The request is invalid: {summary}.",
        errors=field_errors,
    )


def register(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(DomainError)
    def _domain_error(exc: DomainError) -> Response[str]:
        return problem(exc.status, exc.slug, exc.title, exc.detail, errors=exc.errors, headers=exc.headers())

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_media_type(_exc: RequestUnsupportedContentType) -> Response[str]:
        refused = UnsupportedMediaTypeError("Send the body as application/json.")
        return problem(refused.status, refused.slug, refused.title, refused.detail)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        return from_validation_error(exc)

    @app.exception_handler(PydanticValidationError)
    def _invalid_model(exc: PydanticValidationError) -> Response[str]:
        # Bodies a route parses itself (content negotiation) are validated with the same wording.
        return from_validation_error(RequestValidationError(exc.errors(include_input=False)))

    @app.not_found
    def _no_route(_exc: RouteNotFoundError) -> Response[str]:
        return problem(404, "not-found", "Not found", "No such route.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return problem(500, "internal-error", "Internal error", "Something went wrong on our side; it was logged.")
