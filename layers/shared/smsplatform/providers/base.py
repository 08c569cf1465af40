"""The interface every SMS provider adapter implements, and an account's route through them.

A provider owns everything about itself: sending, and the webhooks it calls
back (status and inbound), whose signatures it checks and whose payloads it
turns into the platform's `Receipt` and `InboundMessage`.

The sender hands a provider one message at a time, from many threads at once
(calls wait on the network), then calls `flush` once the batch's calls are done
and `after_recorded` once their results are committed. An adapter reports
failures as `ProviderError`, saying whether a later attempt may succeed and
whether the message may have gone out anyway (`in_doubt`: a 5xx after the
request was sent, an answer lost). A message in doubt is tried again only with
an idempotent provider, under the same id; otherwise it fails as
`outcome_unknown`, because a real provider would deliver a second copy.

A `Route` is the ordered list of providers an account sends through: a message
that fails transiently with one goes to the next at once, unless it is in doubt.
"""

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from smsplatform.core.config import Settings
from smsplatform.core.errors import NotFoundError
from smsplatform.core.queue_messages import InboundMessage, Receipt

Outcome = Literal["accepted", "transient", "permanent"]


@dataclass(frozen=True)
class OutboundMessage:
    id: UUID  # our delivery-log id; adapters that can pass a client reference send this
    to: str  # E.164
    body: str
    sender_id: str | None
    attempt: int  # 1 for the first attempt
    # Seconds left of the message's validity period, if it has one: providers with a TTL are told.
    validity_seconds: int | None = None


@dataclass(frozen=True)
class SendResult:
    message_id: UUID
    outcome: Outcome
    external_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    provider: str | None = None  # the provider that gave this outcome
    in_doubt: bool = False  # the provider may have taken it: never fail over, resend only under the same id
    retry_after: float | None = None  # seconds the provider asked us to wait (429 Retry-After)


class ProviderError(Exception):
    def __init__(
        self, code: str, message: str, *, transient: bool, in_doubt: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        self.in_doubt = in_doubt
        self.retry_after = retry_after


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's call to one of our webhooks, as it signed it."""

    body: bytes
    headers: Mapping[str, str]  # names in lower case
    url: str  # our public base URL (or https://<Host>), the raw path and the query


@dataclass(frozen=True)
class WebhookReply:
    """What an inbound webhook answers the provider."""

    content_type: str
    body: str


class Provider(ABC):
    name: str = ""
    # True when resending a message id (after a crash left its outcome unknown) can
    # never reach the handset twice; otherwise such a message fails as "outcome_unknown".
    idempotent: bool = False
    # False for a provider whose calls never wait (the simulator at 0 ms): threads would only add overhead.
    blocking: bool = True
    # True when one instance serves every batch of a process (it keeps connections, not per-batch state).
    reusable: bool = False
    # Keywords the provider answers itself on its numbers (normalised, see sending/keywords.py): a reply
    # of ours to one of them would be the recipient's second.
    answers_keywords: frozenset[str] = frozenset()

    @abstractmethod
    def send(self, message: OutboundMessage) -> str:
        """Sends one message and returns the provider's id for it; raises ProviderError."""

    def flush(self) -> None:
        """After the batch's calls, before their results are recorded. Optional: most providers keep nothing."""
        return

    def after_recorded(self, results: list[SendResult]) -> None:
        """After the batch's results are committed. Optional: real providers send receipts on their own."""
        return

    def call(self, message: OutboundMessage) -> SendResult:
        """`send`, with every failure turned into a result: unknown errors are transient, ambiguous ones in doubt."""
        try:
            external_id = self.send(message)
        except ProviderError as exc:
            if exc.in_doubt and not self.idempotent:
                detail = f"{exc.code}: {exc.message}"[:400] + "; it may have gone out, so it is not resent."
                return SendResult(message.id, "permanent", None, "outcome_unknown", detail, self.name, in_doubt=True)
            outcome: Outcome = "transient" if exc.transient or exc.in_doubt else "permanent"
            return SendResult(
                message.id, outcome, None, exc.code, exc.message, self.name, exc.in_doubt, exc.retry_after
            )
        except Exception as exc:  # any other failure of a call is worth another attempt
            detail = f"{type(exc).__name__}: {exc}"[:500]
            return SendResult(message.id, "transient", None, "provider_error", detail, self.name)
        return SendResult(message.id, "accepted", external_id, provider=self.name)

    @classmethod
    def status_webhook(cls, request: WebhookRequest, settings: Settings) -> list[Receipt]:
        """The receipts in a signed status callback; raises PermissionDeniedError when the signature fails."""
        raise NotFoundError(f"No receipts are taken from {cls.name!r}.")

    @classmethod
    def inbound_webhook(cls, request: WebhookRequest, settings: Settings) -> list[InboundMessage]:
        """The messages in a signed inbound callback; raises PermissionDeniedError when the signature fails."""
        raise NotFoundError(f"No inbound messages are taken from {cls.name!r}.")

    @classmethod
    def inbound_reply(cls, accepted: int) -> WebhookReply:
        """What the provider expects back from an inbound webhook: by default, a count as JSON."""
        return WebhookReply("application/json", json.dumps({"accepted": accepted}, separators=(",", ":")))


class Route(Provider):
    """Providers tried in order: a transient failure with one sends the message to the next at once."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        if not providers:
            raise ValueError("a route needs at least one provider")
        self.providers = list(providers)
        self.name = self.providers[0].name
        self.idempotent = all(provider.idempotent for provider in self.providers)
        self.blocking = any(provider.blocking for provider in self.providers)

    def send(self, message: OutboundMessage) -> str:
        result = self.call(message)
        if result.outcome != "accepted" or result.external_id is None:
            raise ProviderError(
                result.error_code or "", result.error_message or "", transient=result.outcome != "permanent"
            )
        return result.external_id

    def call(self, message: OutboundMessage) -> SendResult:
        result = self.providers[0].call(message)
        for provider in self.providers[1:]:
            if result.outcome != "transient" or result.in_doubt:
                break
            result = provider.call(message)
        return result

    def flush(self) -> None:
        for provider in self.providers:
            provider.flush()

    def after_recorded(self, results: list[SendResult]) -> None:
        for provider in self.providers:
            provider.after_recorded([result for result in results if result.provider == provider.name])
