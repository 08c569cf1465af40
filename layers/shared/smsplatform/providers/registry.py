"""Which providers exist, by name, and an account's route through them.

Adding a provider is one module (a `Provider` subclass) and one line here; the
sender, the webhooks and the routing API look providers up by name and never
branch on it. Modules are imported on first use: cold starts pay only for the
providers a function touches.
"""

import importlib
import threading
from collections.abc import Sequence
from typing import Literal, get_args

from smsplatform.core.config import Settings
from smsplatform.core.errors import NotFoundError
from smsplatform.providers.base import Provider, Route

# name -> "module:class"
PROVIDERS = {
    "simulator": "smsplatform.providers.simulator:Simulator",
    "aws_sms": "smsplatform.providers.aws_sms:AwsSms",
    "sns": "smsplatform.providers.sns:Sns",
    "twilio": "smsplatform.providers.twilio:Twilio",
}
ProviderName = Literal["simulator", "aws_sms", "sns", "twilio"]  # for request models: the names above
assert set(get_args(ProviderName)) == set(PROVIDERS), "ProviderName and PROVIDERS must name the same providers"

_shared: dict[tuple[str, str], Provider] = {}
_shared_lock = threading.Lock()


def provider_class(name: str) -> type[Provider]:
    """The provider registered under `name`; NotFoundError for any other name."""
    target = PROVIDERS.get(name)
    if target is None:
        raise NotFoundError(f"There is no SMS provider {name!r}.")
    module, _, attribute = target.partition(":")
    found: type[Provider] = getattr(importlib.import_module(module), attribute)
    return found


def get_provider(name: str, settings: Settings) -> Provider:
    """One adapter; those that keep connections are shared by every batch of the process."""
    key = (name, settings.model_dump_json())  # new settings (tests, a changed secret) get a new adapter
    with _shared_lock:
        if key in _shared:
            return _shared[key]
    if name not in PROVIDERS:
        raise RuntimeError(f"unknown SMS provider {name!r}")
    provider = provider_class(name)(settings)  # type: ignore[call-arg]
    if provider.reusable:
        with _shared_lock:
            provider = _shared.setdefault(key, provider)
    return provider


def default_route(settings: Settings) -> list[str]:
    return [name.strip() for name in settings.provider.split(",") if name.strip()]


def route(names: Sequence[str] | None, settings: Settings) -> Provider:
    """The account's route (or the configured default): one provider, or a `Route` that fails over."""
    chosen = list(names) if names else default_route(settings)
    providers = [get_provider(name, settings) for name in chosen]
    return providers[0] if len(providers) == 1 else Route(providers)
