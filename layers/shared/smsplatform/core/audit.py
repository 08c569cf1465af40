"""The audit trail: one row per mutation, written in the mutation's own transaction."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.core import pagination
from smsplatform.core.pagination import Cursor, Page, page_of

# Keys whose values never reach an audit row, whatever a caller passes.
_SECRET_KEYS = frozenset({"password", "current_password", "new_password", "password_hash", "token", "secret"})


@dataclass(frozen=True)
class RequestMeta:
    """Who is calling from where, as the gateway saw it."""

    ip_address: str | None = None
    user_agent: str | None = None


def record(
    conn: Connection[Any], user_id: UUID | None, action: str, details: dict[str, Any], meta: RequestMeta
) -> None:
    safe = {key: value for key, value in details.items() if key not in _SECRET_KEYS}
    conn.execute(
        "INSERT INTO audit_logs (user_id, action, details, ip_address, user_agent) VALUES (%s, %s, %s, %s, %s)",
        (user_id, action, Jsonb(safe), meta.ip_address, (meta.user_agent or "")[:1000] or None),
    )


@dataclass(frozen=True)
class AuditEntry:
    id: UUID
    user_id: UUID | None
    action: str
    details: dict[str, Any]
    ip_address: str | None
    user_agent: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DictRow) -> "AuditEntry":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def list_entries(
    conn: Connection[DictRow], user_id: UUID | None, limit: int, cursor: Cursor | None, action: str | None = None
) -> Page[AuditEntry]:
    """Newest first; `user_id` None means every account's (operators only)."""
    keyset, params = pagination.after(cursor)
    owner = "user_id = %(user)s" if user_id is not None else "TRUE"
    rows = conn.execute(
        f"""SELECT id, user_id, action, details, ip_address, user_agent, created_at FROM audit_logs
             WHERE {owner} AND (%(action)s::text IS NULL OR action = %(action)s) {keyset}
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"user": user_id, "action": action, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([AuditEntry.from_row(row) for row in rows], limit)
