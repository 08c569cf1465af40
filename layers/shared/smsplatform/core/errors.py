"""Domain errors. Raised by the library, mapped to problem+json in api/problems.py only."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """Base of every error a caller can cause; `slug` is the stable problem type."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInputError(DomainError):
    status = 422
    slug = "validation-error"
    title = "Invalid input"


class MalformedRequestError(DomainError):
    status = 400
    slug = "malformed-request"
    title = "Malformed request"


class AuthenticationError(DomainError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class PermissionDeniedError(DomainError):
    status = 403
    slug = "forbidden"
    title = "Permission denied"


class AccountSuspendedError(DomainError):
    status = 403
    slug = "account-suspended"
    title = "Account suspended"


class NotFoundError(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InsufficientCreditsError(DomainError):
    status = 402
    slug = "insufficient-credits"
    title = "Insufficient credits"


class TooManyAttemptsError(DomainError):
    status = 429
    slug = "too-many-attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = max(1, retry_after_seconds)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class QueueFullError(DomainError):
    status = 429
    slug = "queue-full"
    title = "Too many messages waiting"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "60"}


class PayloadTooLargeError(DomainError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaTypeError(DomainError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"
