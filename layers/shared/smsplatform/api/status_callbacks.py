"""Routes for the account's status callback: where message status changes are POSTed, and its signing secret."""

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, Field

from smsplatform.accounts import permissions
from smsplatform.api.context import caller, request_meta, withhold_from_replay
from smsplatform.api.models import RequestModel
from smsplatform.api.resolver import BEARER
from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.core.secret_store import callback_signing_key
from smsplatform.sending import status_callbacks, twilio_compatible


class StatusCallbackRequest(RequestModel):
    url: Annotated[str | None, Field(max_length=2048, description="https URL; null stops the callbacks")]


class StatusCallbackResponse(BaseModel):
    url: str | None
    secret_version: int
    secret_rotated_at: datetime | None
    signature: str = Field(
        default=f"{status_callbacks.SIGNATURE_HEADER}: hex HMAC-SHA256 of the raw body, keyed by the secret",
        description="How each callback is signed",
    )


class SecretResponse(StatusCallbackResponse):
    secret: Annotated[str, Field(description="Shown once: verify X-Signature with it")]
    twilio_auth_token: Annotated[
        str,
        Field(
            description="Shown once: the auth token of the Twilio-compatible API's StatusCallbacks; Twilio's "
            "RequestValidator verifies their X-Twilio-Signature with it"
        ),
    ]


def _response(found: status_callbacks.CallbackSettings) -> StatusCallbackResponse:
    return StatusCallbackResponse(
        url=found.url, secret_version=found.secret_version, secret_rotated_at=found.secret_rotated_at
    )


def status_callback_routes() -> Router:
    router = Router()

    @router.get(
        "/v1/status-callback", tags=["Status callbacks"], summary="Where status changes are sent", security=BEARER
    )
    def get_status_callback() -> StatusCallbackResponse:
        principal = caller(router, permissions.WEBHOOKS_WRITE)
        with db.transaction() as conn:
            return _response(status_callbacks.get_settings_for(conn, principal.user_id))

    @router.put(
        "/v1/status-callback",
        tags=["Status callbacks"],
        summary="Set or clear the status callback URL",
        description="Each message status change (sent, delivered, undelivered, failed) is POSTed there, signed.",
        security=BEARER,
    )
    def set_status_callback(body: Annotated[StatusCallbackRequest, Body()]) -> StatusCallbackResponse:
        principal = caller(router, permissions.WEBHOOKS_WRITE)
        url = status_callbacks.check_url(body.url, get_settings()) if body.url else None
        with db.transaction() as conn:
            return _response(status_callbacks.set_url(conn, principal.user_id, url, request_meta(router)))

    @router.post(
        "/v1/status-callback/secret",
        tags=["Status callbacks"],
        summary="Rotate the signing secret (and the Twilio-compatible auth token)",
        description="The new secret signs every callback sent from now on, retries included; it is shown only here.",
        security=BEARER,
    )
    def rotate_secret() -> SecretResponse:
        principal = caller(router, permissions.WEBHOOKS_WRITE)
        with db.transaction() as conn:
            found = status_callbacks.rotate_secret(conn, principal.user_id, request_meta(router))
        master = callback_signing_key(get_settings())
        withhold_from_replay(router)
        return SecretResponse(
            **_response(found).model_dump(),
            secret=status_callbacks.secret(master, principal.user_id, found.secret_version),
            twilio_auth_token=twilio_compatible.auth_token(master, principal.user_id, found.secret_version),
        )

    return router
