"""Provider webhooks: public routes, authenticated by the provider's signature, not a bearer token.

A webhook looks the provider up in the registry, which checks the signature and
turns the payload into receipts or inbound messages, then enqueues them; the
receipts function applies them in batches. A missing or forged signature is
refused with 403 before anything is enqueued; a provider that is not
registered or not configured answers 404. Each provider module documents its
own signature scheme.
"""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel

from smsplatform.api.context import http_event
from smsplatform.core import queues
from smsplatform.core.config import Settings, get_settings
from smsplatform.core.queue_messages import ProviderEvents
from smsplatform.providers.base import WebhookRequest
from smsplatform.providers.registry import provider_class


class Accepted(BaseModel):
    accepted: int


def _webhook_request(event: APIGatewayProxyEventV2, settings: Settings) -> WebhookRequest:
    """The call as the provider signed it: our public base URL (or the Host), the raw path and query."""
    raw = event.decoded_body or ""
    base = (settings.public_base_url or f"https://{event.headers.get('host', '')}").rstrip("/")
    query = event.raw_query_string
    return WebhookRequest(
        body=raw.encode() if isinstance(raw, str) else raw,
        headers={name.lower(): value for name, value in event.headers.items()},
        url=f"{base}{event.raw_path}" + (f"?{query}" if query else ""),
    )


def _enqueue(events: ProviderEvents) -> None:
    if events.receipts or events.inbound:
        queues.send("receipts", events)


def webhooks_routes() -> Router:
    router = Router()

    @router.post(
        "/v1/webhooks/<provider>/status",
        tags=["Webhooks"],
        summary="Delivery receipts from a provider",
        description="Authenticated by the provider's signature; a missing or forged one is refused with 403.",
    )
    def status(provider: str) -> Accepted:
        settings = get_settings()
        receipts = provider_class(provider).status_webhook(_webhook_request(http_event(router), settings), settings)
        _enqueue(ProviderEvents(provider=provider, receipts=receipts))
        return Accepted(accepted=len(receipts))

    @router.post(
        "/v1/webhooks/<provider>/inbound",
        tags=["Webhooks"],
        summary="Messages recipients send back",
        description=(
            "STOP, STOPALL, UNSUBSCRIBE, CANCEL, END or QUIT put the sender on the opt-out list of the account "
            "that messaged them; START or UNSTOP take them off. Authenticated by the provider's signature."
        ),
    )
    def inbound(provider: str) -> Response[str]:
        settings = get_settings()
        found = provider_class(provider)
        messages = found.inbound_webhook(_webhook_request(http_event(router), settings), settings)
        _enqueue(ProviderEvents(provider=provider, inbound=messages))
        reply = found.inbound_reply(len(messages))
        return Response(status_code=200, content_type=reply.content_type, body=reply.body)

    return router
