"""The interface every SMS provider adapter implements, and an account's route through them.

The sender hands a provider one message at a time, from many threads at once
(calls wait on the network), then calls `flush` once the batch's calls are done
and `after_recorded` once their results are committed. An adapter reports
failures as `ProviderError`, saying whether a later attempt may succeed.

A `Route` is the ordered list of providers an account sends through: a message
that fails transiently with one goes to the next at once.
"""

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
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
    provider: str | None = None  # the provider that gave this outcome


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
    # True when one instance serves every batch of a process (it keeps connections, not per-batch state).
    reusable: bool = False

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
            outcome: Outcome = "transient" if exc.transient else "permanent"
            return SendResult(message.id, outcome, None, exc.code, exc.message, self.name)
        except Exception as exc:  # any other failure of a call is worth another attempt
            detail = f"{type(exc).__name__}: {exc}"[:500]
            return SendResult(message.id, "transient", None, "provider_error", detail, self.name)
        return SendResult(message.id, "accepted", external_id, provider=self.name)


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
            if result.outcome != "transient":
                break
            result = provider.call(message)
        return result

    def flush(self) -> None:
        for provider in self.providers:
            provider.flush()

    def after_recorded(self, results: list[SendResult]) -> None:
        for provider in self.providers:
            provider.after_recorded([result for result in results if result.provider == provider.name])


ProviderName = Literal["simulator", "aws_sms", "sns", "twilio"]
_shared: dict[tuple[str, str], Provider] = {}
_shared_lock = threading.Lock()


def get_provider(name: str, settings: Settings) -> Provider:
    """One adapter; those that keep connections are shared by every batch of the process."""
    key = (name, settings.model_dump_json())  # new settings (tests, a changed secret) get a new adapter
    with _shared_lock:
        if key in _shared:
            return _shared[key]
    provider = _build(name, settings)
    if provider.reusable:
        with _shared_lock:
            provider = _shared.setdefault(key, provider)
    return provider


def _build(name: str, settings: Settings) -> Provider:
    if name == "simulator":
        from smsplatform.providers.simulator import Simulator

        return Simulator(settings)
    if name == "aws_sms":
        from smsplatform.providers.aws_sms import AwsSms

        return AwsSms(settings)
    if name == "sns":
        from smsplatform.providers.sns import Sns

        return Sns(settings)
    if name == "twilio":
        from smsplatform.providers.twilio import Twilio

        return Twilio(settings)
    raise RuntimeError(f"unknown SMS provider {name!r}")


def default_route(settings: Settings) -> list[str]:
    return [name.strip() for name in settings.provider.split(",") if name.strip()]


def route(names: Sequence[str] | None, settings: Settings) -> Provider:
    """The account's route (or the configured default): one provider, or a `Route` that fails over."""
    chosen = list(names) if names else default_route(settings)
    providers = [get_provider(name, settings) for name in chosen]
    return providers[0] if len(providers) == 1 else Route(providers)
