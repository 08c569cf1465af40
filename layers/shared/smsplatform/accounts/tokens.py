"""API tokens: random secrets shown once, stored as a SHA-256 hash with a display prefix."""

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.accounts import permissions
from smsplatform.core import audit, pagination
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import FieldError, InvalidInputError, NotFoundError, PermissionDeniedError
from smsplatform.core.pagination import Cursor, Page, page_of

PREFIX = "sk_live_"
_DISPLAY_LENGTH = len(PREFIX) + 6
# `last_used` is written at most this often per token, so a busy integration
# costs one UPDATE a minute, not one per request.
LAST_USED_RESOLUTION_SECONDS = 60
_COLUMNS = "id, user_id, name, token_prefix, permissions, last_used, expires_at, created_at, revoked_at, status"


TokenStatus = Literal["active", "revoked", "expired"]


@dataclass(frozen=True)
class ApiToken:
    id: UUID
    user_id: UUID
    name: str
    token_prefix: str
    permissions: list[str]
    last_used: datetime | None
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    status: TokenStatus

    @property
    def effective_status(self) -> str:
        if self.status == "active" and self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return self.status

    @classmethod
    def from_row(cls, row: DictRow) -> "ApiToken":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(credential: str) -> bool:
    return credential.startswith(PREFIX)


def create_token(
    conn: Connection[DictRow],
    user_id: UUID,
    allowed: frozenset[str],
    *,
    name: str,
    requested: Iterable[str],
    expires_at: datetime | None,
    meta: RequestMeta,
) -> tuple[ApiToken, str]:
    """Returns the stored token and its secret, which is never retrievable again.

    `allowed` is what the creating credential holds: a token never gets more.
    """
    wanted = sorted(set(requested))
    unknown = [permission for permission in wanted if permission not in permissions.ALL]
    if unknown:
        raise InvalidInputError(
            f"Unknown permissions: {', '.join(unknown)}.",
            errors=[FieldError("permissions", f"{p!r} is not a permission") for p in unknown],
        )
    beyond = [permission for permission in wanted if permission not in allowed]
    if beyond:
        raise PermissionDeniedError(f"A token cannot hold permissions its creator lacks: {', '.join(beyond)}.")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInputError(
            "The expiry must be in the future.", errors=[FieldError("expires_at", "must be in the future")]
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        f"""INSERT INTO api_tokens (user_id, token_hash, token_prefix, name, permissions, expires_at)
            VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (user_id, hash_token(secret), secret[:_DISPLAY_LENGTH], name, Jsonb(wanted), expires_at),
    ).fetchone()
    assert row is not None
    token = ApiToken.from_row(row)
    audit.record(
        conn,
        user_id,
        "token.create",
        {"token_id": str(token.id), "name": name, "permissions": wanted, "prefix": token.token_prefix},
        meta,
    )
    return token, secret


def list_tokens(conn: Connection[DictRow], user_id: UUID, limit: int, cursor: Cursor | None) -> Page[ApiToken]:
    keyset, params = pagination.after(cursor)
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM api_tokens WHERE user_id = %(user)s {keyset}
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"user": user_id, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([ApiToken.from_row(row) for row in rows], limit)


def revoke_token(conn: Connection[DictRow], user_id: UUID, token_id: UUID, meta: RequestMeta) -> None:
    """Revokes one of the caller's tokens; revoking a revoked token again changes nothing."""
    row = conn.execute(
        """UPDATE api_tokens t SET status = 'revoked', revoked_at = coalesce(t.revoked_at, now())
             FROM (SELECT id, status FROM api_tokens WHERE id = %s AND user_id = %s FOR UPDATE) previous
            WHERE t.id = previous.id
        RETURNING previous.status AS previous_status, t.token_prefix""",
        (token_id, user_id),
    ).fetchone()
    if row is None:
        raise NotFoundError("No such token.")
    if row["previous_status"] == "active":
        audit.record(conn, user_id, "token.revoke", {"token_id": str(token_id), "prefix": row["token_prefix"]}, meta)


def touch_last_used(conn: Connection[DictRow], token_id: UUID) -> None:
    conn.execute(
        """UPDATE api_tokens SET last_used = now()
            WHERE id = %s AND (last_used IS NULL OR last_used < now() - make_interval(secs => %s))""",
        (token_id, LAST_USED_RESOLUTION_SECONDS),
    )
