"""Secrets from Secrets Manager through Powertools parameters, cached for a bounded age."""

import json
from typing import Any

from pydantic import SecretStr

from smsplatform.core.config import Settings


def get_secret_string(arn: str, settings: Settings) -> str:
    from aws_lambda_powertools.utilities import parameters  # imports boto3: only where a secret is read

    value = parameters.get_secret(arn, max_age=settings.secrets_max_age_seconds)
    return value if isinstance(value, str) else value.decode()


def get_secret_json(arn: str, settings: Settings) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, transform="json", max_age=settings.secrets_max_age_seconds)
    if not isinstance(value, dict):
        raise ValueError(f"secret {arn} does not hold a JSON object")
    return value


def _configured_key(value: SecretStr | None, arn: str | None, settings: Settings, env: str) -> str:
    """A key given directly (tests, local) or by its Secrets Manager ARN (deployed)."""
    if value is not None:
        return value.get_secret_value()
    if arn:
        return get_secret_string(arn, settings)
    raise RuntimeError(f"no key configured: set SMS_{env} or SMS_{env}_ARN")


def jwt_signing_key(settings: Settings) -> str:
    return _configured_key(settings.jwt_secret, settings.jwt_secret_arn, settings, "JWT_SECRET")


def simulator_signing_key(settings: Settings) -> str:
    return _configured_key(settings.simulator_secret, settings.simulator_secret_arn, settings, "SIMULATOR_SECRET")


def callback_signing_key(settings: Settings) -> str:
    return _configured_key(
        settings.callback_signing_secret, settings.callback_signing_secret_arn, settings, "CALLBACK_SIGNING_SECRET"
    )


def twilio_credentials(settings: Settings) -> dict[str, Any]:
    """{"account_sid", "auth_token", and "from_number" or "messaging_service_sid"}."""
    raw = _configured_key(settings.twilio_secret, settings.twilio_secret_arn, settings, "TWILIO_SECRET")
    try:
        credentials: dict[str, Any] = json.loads(raw)
    except ValueError as exc:
        raise RuntimeError("the Twilio secret is not JSON") from exc
    missing = [key for key in ("account_sid", "auth_token") if not credentials.get(key)]
    if missing:
        raise RuntimeError(f"the Twilio secret lacks {', '.join(missing)}")
    return credentials
