"""One AWS API call as a provider send: botocore's failures mapped to ProviderError.

Client errors keep AWS's own code and text; a call that never connected is
transient; a call answered by a server error (5xx, InternalError) or whose
answer was lost is in doubt: it may have been taken, so it is not resent into a
second copy.
"""

from collections.abc import Callable
from typing import Any

from smsplatform.core.config import Settings
from smsplatform.providers.base import ProviderError

# AWS's server-side failures: the request reached the service, which may have acted on it.
_SERVER_ERRORS = {"InternalError", "InternalFailure", "InternalServerException", "ServiceUnavailable"}


def client(service: str, settings: Settings) -> Any:
    """botocore's own retries are off: the pipeline retries with backoff and fails over."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        config=Config(
            retries={"total_max_attempts": 1},
            max_pool_connections=settings.send_concurrency,
            connect_timeout=3,
            read_timeout=settings.provider_timeout_seconds,
        ),
    )


def call(operation: Callable[..., dict[str, Any]], transient_codes: set[str], **params: Any) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

    try:
        return operation(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "ClientError")
        reason = exc.response.get("Reason")
        text = str(error.get("Message") or code) + (f" ({reason})" if reason else "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        if status >= 500 or code in _SERVER_ERRORS:
            raise ProviderError(code, text[:500], transient=False, in_doubt=True) from exc
        raise ProviderError(code, text[:500], transient=code in transient_codes) from exc
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        raise ProviderError("connection_failed", str(exc)[:500], transient=True) from exc
    except BotoCoreError as exc:
        raise ProviderError(
            "answer_lost", f"The answer was lost ({type(exc).__name__}).", transient=False, in_doubt=True
        ) from exc
