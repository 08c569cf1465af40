"""Secrets from Secrets Manager through Powertools parameters, cached for a bounded age."""

from typing import Any

from smsplatform.config import Settings


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


def jwt_signing_key(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if settings.jwt_secret_arn:
        return get_secret_string(settings.jwt_secret_arn, settings)
    raise RuntimeError("no session signing key: set SMS_JWT_SECRET or SMS_JWT_SECRET_ARN")


def simulator_signing_key(settings: Settings) -> str:
    if settings.simulator_secret is not None:
        return settings.simulator_secret.get_secret_value()
    if settings.simulator_secret_arn:
        return get_secret_string(settings.simulator_secret_arn, settings)
    raise RuntimeError("no simulator signing key: set SMS_SIMULATOR_SECRET or SMS_SIMULATOR_SECRET_ARN")
