"""The simulator provider: the local default, and what tests and benchmarks send through.

It behaves like a provider without reaching a handset: each call waits the
configured latency; the number's last digits pick an outcome (rules such as
"99990": "reject"); accepted messages land in the `simulator_messages` outbox;
and once the sender has recorded a batch, signed delivery receipts are POSTed to
the receipts webhook (or, with no URL configured, put on the receipts queue
directly). External ids derive from our message id, and the outbox is keyed by
it, so a message resent after a crash is recognised rather than sent twice.

Its webhooks take JSON signed with `X-Simulator-Signature: sha256=<hex HMAC-SHA256
of the body>` under the simulator signing secret: `{"receipts": [...]}` on
/status and `{"messages": [...]}` on /inbound.

Outcomes: "reject" fails permanently; "throttle" fails transiently every time;
"flaky" fails transiently on the first attempt only; "undelivered" is accepted
and then reported undelivered. Anything else is accepted and delivered.
"""

import hashlib
import hmac
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter

from smsplatform.core import db, queues
from smsplatform.core.config import Settings
from smsplatform.core.errors import PermissionDeniedError
from smsplatform.core.queue_messages import InboundMessage, ProviderEvents, Receipt, ReceiptStatus
from smsplatform.core.secret_store import simulator_signing_key
from smsplatform.providers.base import OutboundMessage, Provider, ProviderError, SendResult, WebhookRequest

SIGNATURE_HEADER = "X-Simulator-Signature"
_RECEIPTS_PER_POST = 1000
MAX_PER_CALL = 1000
_RECEIPT_LIST = TypeAdapter(list[Receipt])
_NAMESPACE = uuid.UUID("6f1c3d52-8a8e-4f0b-9a37-2d7f4f9c0e11")


def sign(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify(key: str, body: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(key, body), signature)


class ReceiptIn(BaseModel):
    external_id: Annotated[str, Field(min_length=1, max_length=100)]
    status: ReceiptStatus
    timestamp: datetime
    error_code: Annotated[str, Field(max_length=50)] | None = None
    error_message: Annotated[str, Field(max_length=500)] | None = None


class SimulatorReceipts(BaseModel):
    """The body of the simulator's status webhook."""

    receipts: Annotated[list[ReceiptIn], Field(min_length=1, max_length=MAX_PER_CALL)]


class InboundIn(BaseModel):
    external_id: Annotated[str, Field(min_length=1, max_length=100)]
    from_number: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{1,14}$")]
    to_number: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    body: Annotated[str, Field(max_length=1600)]
    received_at: datetime | None = None


class SimulatorInbound(BaseModel):
    """The body of the simulator's inbound webhook."""

    messages: Annotated[list[InboundIn], Field(min_length=1, max_length=MAX_PER_CALL)]


def _signed_body(request: WebhookRequest, settings: Settings) -> bytes:
    if not verify(simulator_signing_key(settings), request.body, request.headers.get(SIGNATURE_HEADER.lower())):
        raise PermissionDeniedError("The request's X-Simulator-Signature does not verify.")
    return request.body


class Simulator(Provider):
    name = "simulator"
    idempotent = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.latency = settings.simulator_latency_ms / 1000
        self.blocking = self.latency > 0
        # Longest suffix first, so "199990" wins over "99990".
        self.rules = sorted(settings.simulator_rules.items(), key=lambda rule: -len(rule[0]))
        self._accepted: list[tuple[OutboundMessage, str, str]] = []
        self._undelivered: set[str] = set()  # external ids whose receipt will say undelivered
        self._lock = threading.Lock()

    @classmethod
    def status_webhook(cls, request: WebhookRequest, settings: Settings) -> list[Receipt]:
        body = SimulatorReceipts.model_validate_json(_signed_body(request, settings))
        return [Receipt(**receipt.model_dump()) for receipt in body.receipts]

    @classmethod
    def inbound_webhook(cls, request: WebhookRequest, settings: Settings) -> list[InboundMessage]:
        now = datetime.now(UTC)
        body = SimulatorInbound.model_validate_json(_signed_body(request, settings))
        return [
            InboundMessage(**message.model_dump(exclude={"received_at"}), received_at=message.received_at or now)
            for message in body.messages
        ]

    def outcome_for(self, number: str) -> str:
        return next((outcome for suffix, outcome in self.rules if number.endswith(suffix)), "deliver")

    def send(self, message: OutboundMessage) -> str:
        if self.latency:
            time.sleep(self.latency)
        outcome = self.outcome_for(message.to)
        if outcome == "reject":
            raise ProviderError("SIM-21211", "The number is not a reachable mobile number.", transient=False)
        if outcome == "throttle" or (outcome == "flaky" and message.attempt == 1):
            raise ProviderError("SIM-20429", "Too many requests; try again later.", transient=True)
        external_id = f"SM{uuid.uuid5(_NAMESPACE, str(message.id)).hex}"
        with self._lock:
            self._accepted.append((message, external_id, outcome))
            if outcome == "undelivered":
                self._undelivered.add(external_id)
        return external_id

    def flush(self) -> None:
        """Writes the accepted messages to the outbox in one statement; a resend adds nothing."""
        with self._lock:
            accepted, self._accepted = self._accepted, []
        if not accepted:
            return
        with db.transaction() as conn:
            conn.execute(
                """INSERT INTO simulator_messages (message_id, external_id, to_number, sender_id, body, outcome)
                   SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
                   ON CONFLICT (message_id) DO NOTHING""",
                (
                    [m.id for m, _, _ in accepted],
                    [external_id for _, external_id, _ in accepted],
                    [m.to for m, _, _ in accepted],
                    [m.sender_id for m, _, _ in accepted],
                    [m.body for m, _, _ in accepted],
                    [outcome for _, _, outcome in accepted],
                ),
            )

    def after_recorded(self, results: list[SendResult]) -> None:
        now = datetime.now(UTC)
        with self._lock:
            undelivered, self._undelivered = self._undelivered, set()
        receipts = [
            Receipt(external_id=result.external_id, status="delivered", timestamp=now)
            if result.external_id not in undelivered
            else Receipt(
                external_id=result.external_id,
                status="undelivered",
                error_code="SIM-30003",
                error_message="The handset was unreachable.",
                timestamp=now,
            )
            for result in results
            if result.outcome == "accepted" and result.external_id
        ]
        for start in range(0, len(receipts), _RECEIPTS_PER_POST):
            self.emit_receipts(receipts[start : start + _RECEIPTS_PER_POST])

    def emit_receipts(self, receipts: list[Receipt]) -> None:
        url = self.settings.simulator_receipts_url or (
            f"{self.settings.public_base_url.rstrip('/')}/v1/webhooks/simulator/status"
            if self.settings.public_base_url
            else None
        )
        if url is None:
            queues.send("receipts", ProviderEvents(provider=self.name, receipts=receipts))
            return
        body = b'{"receipts":' + _RECEIPT_LIST.dump_json(receipts, exclude_none=True) + b"}"
        request = urllib.request.Request(  # noqa: S310 - a configured http(s) URL
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(simulator_signing_key(self.settings), body),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if response.status >= 300:
                raise RuntimeError(f"receipts webhook answered {response.status}")
