"""The interface every SMS provider adapter implements, and the choice of one.

The sender hands a provider one message at a time, from many threads at once
(calls wait on the network), then calls `flush` once the batch's calls are done
and `after_recorded` once their results are committed. An adapter reports
failures as `ProviderError`, saying whether a later attempt may succeed.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from smsplatform.config import Settings

Outcome = Literal["accepted", "transient", "permanent"]


@dataclass(frozen=True)
class OutboundMessage:
    id: UUID  # our delivery-log id; adapters that can pass a client reference send this
    to: str  # E.164
    body: str
    sender_id: str | None
    attempt: int  # 1 for the first attempt


@dataclass(frozen=True)
class SendResult:
    message_id: UUID
    outcome: Outcome
    external_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ProviderError(Exception):
    def __init__(self, code: str, message: str, *, transient: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient


class Provider(ABC):
    name: str = ""
    # True when resending a message id (after a crash left its outcome unknown) can
    # never reach the handset twice; otherwise such a message fails as "outcome_unknown".
    idempotent: bool = False
    # False for a provider whose calls never wait (the simulator at 0 ms): threads would only add overhead.
    blocking: bool = True

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
        """`send`, with every failure turned into a result: unknown errors are transient."""
        try:
            external_id = self.send(message)
        except ProviderError as exc:
            return SendResult(message.id, "transient" if exc.transient else "permanent", None, exc.code, exc.message)
        except Exception as exc:  # any other failure of a call is worth another attempt
            return SendResult(message.id, "transient", None, "provider_error", f"{type(exc).__name__}: {exc}"[:500])
        return SendResult(message.id, "accepted", external_id)


def get_provider(settings: Settings) -> Provider:
    if settings.provider == "simulator":
        from smsplatform.providers.simulator import Simulator

        return Simulator(settings)
    raise RuntimeError(f"unknown SMS provider {settings.provider!r}")
