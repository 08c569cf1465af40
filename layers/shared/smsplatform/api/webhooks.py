"""Provider webhooks: public routes, authenticated by the provider's signature, not a bearer token.

A receipt webhook only checks the signature and the shape, then enqueues the
receipts; the receipts function applies them in batches.
"""

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, Field

from smsplatform import queues
from smsplatform.config import get_settings
from smsplatform.errors import NotFoundError, PermissionDeniedError
from smsplatform.providers import simulator
from smsplatform.secret_store import simulator_signing_key

MAX_RECEIPTS_PER_CALL = 1000


class ReceiptIn(BaseModel):
    external_id: Annotated[str, Field(min_length=1, max_length=100)]
    status: Literal["delivered", "undelivered"]
    timestamp: datetime
    error_code: Annotated[str, Field(max_length=50)] | None = None
    error_message: Annotated[str, Field(max_length=500)] | None = None


class SimulatorReceipts(BaseModel):
    receipts: Annotated[list[ReceiptIn], Field(min_length=1, max_length=MAX_RECEIPTS_PER_CALL)]


class Accepted(BaseModel):
    accepted: int


def _simulator_receipts(body: bytes, signature: str | None) -> list[ReceiptIn]:
    if not simulator.verify(simulator_signing_key(get_settings()), body, signature):
        raise PermissionDeniedError("The receipt's signature does not verify.")
    return SimulatorReceipts.model_validate_json(body).receipts


def webhooks_routes() -> Router:
    router = Router()

    @router.post(
        "/v1/webhooks/<provider>/status",
        tags=["Webhooks"],
        summary="Delivery receipts from a provider",
        description="Authenticated by the provider's signature; a missing or forged one is refused with 403.",
    )
    def status(provider: str) -> Accepted:
        event = router.current_event
        if provider != simulator.Simulator.name:
            raise NotFoundError(f"No receipts are taken from {provider!r}.")
        raw = event.decoded_body or ""
        body = raw.encode() if isinstance(raw, str) else raw
        receipts = _simulator_receipts(body, event.headers.get(simulator.SIGNATURE_HEADER.lower()))
        queues.send("receipts", {"provider": provider, "receipts": [r.model_dump(mode="json") for r in receipts]})
        return Accepted(accepted=len(receipts))

    return router
