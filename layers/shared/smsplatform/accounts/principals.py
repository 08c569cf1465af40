"""Who is calling: a credential resolved to a user, its role and its permissions.

The Lambda authorizer resolves the bearer credential once per request and hands
the result to the handlers in the request context; handlers then check the
permission each route needs. HTTP APIs cannot answer 401 with a body from an
authorizer, so a failed authentication is passed on as `auth_error` and the
handler answers it as problem+json (see docs/adr/0002-authorizer.md).
"""

import base64
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.accounts import permissions, sessions, tokens
from smsplatform.core.errors import AccountSuspendedError, AuthenticationError, DomainError, PermissionDeniedError


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    role: str
    permissions: frozenset[str]
    credential: str  # "session" or "token"
    credential_id: str = ""  # which one: "session:<jti>" or "token:<id>" (what Idempotency-Keys belong to)

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise PermissionDeniedError(f"This credential lacks the {permission!r} permission.")

    def to_context(self) -> dict[str, str]:
        """The authorizer's context: strings only, as API Gateway passes them on."""
        return {
            "user_id": str(self.user_id),
            "role": self.role,
            "permissions": " ".join(sorted(self.permissions)),
            "credential": self.credential,
            "credential_id": self.credential_id,
        }


# How each authentication failure travels from the authorizer to the handler.
_FAILURES: dict[str, type[DomainError]] = {
    "unauthenticated": AuthenticationError,
    "account-suspended": AccountSuspendedError,
}


def failure_context(error: DomainError) -> dict[str, str]:
    slug = error.slug if error.slug in _FAILURES else "unauthenticated"
    return {"auth_error": slug, "auth_detail": error.detail}


def from_context(context: dict[str, Any] | None) -> Principal:
    """The principal the authorizer resolved, or the error it found, raised."""
    if not context:
        raise AuthenticationError("This route needs an Authorization: Bearer <token> header.")
    if "auth_error" in context:
        error_class = _FAILURES.get(context["auth_error"], AuthenticationError)
        raise error_class(context.get("auth_detail") or "Authentication failed.")
    return Principal(
        user_id=UUID(context["user_id"]),
        role=context["role"],
        permissions=frozenset(context.get("permissions", "").split()),
        credential=context.get("credential", "session"),
        credential_id=context.get("credential_id", ""),
    )


def twilio_account_sid(user_id: UUID) -> str:
    """The account's Twilio-style AccountSid: the username of HTTP Basic auth on the Twilio-compatible API."""
    return "AC" + user_id.hex


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("This route needs an Authorization: Bearer <token> header.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def resolve(
    conn: Connection[DictRow], authorization: str | None, signing_key: str, *, basic: bool = False
) -> Principal:
    """Resolves an Authorization header to an active account's principal, or raises.

    With `basic` (the Twilio-compatible API) HTTP Basic is accepted too: the AccountSid and an API token.
    """
    scheme, _, value = (authorization or "").strip().partition(" ")
    if basic and scheme.lower() == "basic":
        return _resolve_basic(conn, value.strip())
    credential = bearer_token(authorization)
    if tokens.looks_like_token(credential):
        return _resolve_api_token(conn, credential)
    claims = sessions.verify_session(credential, signing_key)
    row = conn.execute(
        f"""SELECT u.id, u.role, u.account_status, {permissions.USER_PERMISSIONS_SQL} AS permissions,
                   %s < date_trunc('second', u.password_changed_at) AS superseded
              FROM users u WHERE u.id = %s""",
        (claims.issued_at, claims.user_id),
    ).fetchone()
    if row is None:
        raise AuthenticationError("The account behind this session no longer exists.")
    if row["superseded"]:
        raise AuthenticationError("The password was changed after this session began; log in again.")
    _require_active(row["account_status"])
    return Principal(
        user_id=row["id"],
        role=row["role"],
        permissions=frozenset(row["permissions"]),
        credential="session",
        credential_id=f"session:{claims.session_id}",
    )


def _resolve_basic(conn: Connection[DictRow], encoded: str) -> Principal:
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError as exc:  # not base64 (binascii.Error), not ASCII, or not UTF-8 inside
        raise AuthenticationError("The Basic credentials are not base64 of 'AccountSid:token'.") from exc
    if not tokens.looks_like_token(password):
        raise AuthenticationError("Basic auth takes the AccountSid and an API token (sk_live_...) as the password.")
    principal = _resolve_api_token(conn, password)
    if username != twilio_account_sid(principal.user_id):
        raise AuthenticationError("The username is not the AccountSid of the token's account.")
    return principal


def _resolve_api_token(conn: Connection[DictRow], credential: str) -> Principal:
    row = conn.execute(
        f"""SELECT t.id AS token_id, t.status, t.expires_at <= now() AS expired, t.permissions AS granted,
                   u.id, u.role, u.account_status, {permissions.USER_PERMISSIONS_SQL} AS permissions
              FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = %s""",
        (tokens.hash_token(credential),),
    ).fetchone()
    if row is None:
        raise AuthenticationError("The bearer token is not a valid session or API token.")
    if row["status"] != "active":
        raise AuthenticationError("This API token has been revoked.")
    if row["expired"]:
        raise AuthenticationError("This API token has expired.")
    _require_active(row["account_status"])
    tokens.touch_last_used(conn, row["token_id"])
    # What the role no longer allows (after a demotion, say) the token loses too.
    effective = frozenset(row["granted"]) & frozenset(row["permissions"])
    return Principal(
        user_id=row["id"],
        role=row["role"],
        permissions=effective,
        credential="token",
        credential_id=f"token:{row['token_id']}",
    )


def _require_active(account_status: str) -> None:
    if account_status != "active":
        raise AccountSuspendedError(f"This account is {account_status}; contact support.")
