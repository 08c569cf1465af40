"""Short-lived signed session tokens (HS256 JWTs) issued at login."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

from smsplatform.core.errors import AuthenticationError

ISSUER = "sms-platform"
AUDIENCE = "sms-platform-api"
_ALGORITHM = "HS256"
# Tolerated clock difference between the issuing and the verifying function.
_LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class SessionToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class SessionClaims:
    user_id: UUID
    issued_at: datetime
    expires_at: datetime
    session_id: str  # the token's jti: one login


def issue_session(user_id: UUID, key: str, ttl_seconds: int, now: datetime | None = None) -> SessionToken:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
        "jti": secrets.token_urlsafe(12),
        "typ": "session",
    }
    return SessionToken(jwt.encode(claims, key, algorithm=_ALGORITHM), ttl_seconds)


def verify_session(token: str, key: str) -> SessionClaims:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("The session has expired; log in again.") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError("The bearer token is not a valid session or API token.") from exc
    if claims.get("typ") != "session":
        raise AuthenticationError("The bearer token is not a valid session or API token.")
    try:
        user_id = UUID(claims["sub"])
    except ValueError as exc:
        raise AuthenticationError("The bearer token is not a valid session or API token.") from exc
    return SessionClaims(
        user_id=user_id,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        session_id=str(claims.get("jti") or claims["iat"]),
    )
