"""What a route needs from the API Gateway event: the caller and where the call came from."""

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from smsplatform.accounts import principals
from smsplatform.accounts.principals import Principal
from smsplatform.core.audit import RequestMeta


def http_event(router: BaseRouter) -> APIGatewayProxyEventV2:
    event = router.current_event
    assert isinstance(event, APIGatewayProxyEventV2)
    return event


def authorizer_context(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    """What the Lambda authorizer put in the request context; empty on public routes."""
    authorizer = event.raw_event.get("requestContext", {}).get("authorizer") or {}
    return dict(authorizer.get("lambda") or {})


def caller(router: BaseRouter, permission: str | None = None) -> Principal:
    """The authenticated principal, checked for `permission`; raises 401/403 problems otherwise."""
    principal = principals.from_context(authorizer_context(http_event(router)))
    if permission is not None:
        principal.require(permission)
    return principal


def request_meta(router: BaseRouter) -> RequestMeta:
    http = http_event(router).request_context.http
    return RequestMeta(ip_address=http.source_ip or None, user_agent=http.user_agent or None)


WITHHOLD_FROM_REPLAY = "withhold_from_replay"


def withhold_from_replay(router: BaseRouter) -> None:
    """For a route whose response holds a secret shown once (a new token): Idempotency-Key never stores it."""
    router.append_context(**{WITHHOLD_FROM_REPLAY: True})
